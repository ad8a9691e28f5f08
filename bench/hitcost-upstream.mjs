// hitcost-upstream.mjs — a fixed ~1 KB chat completion for hitcost.sh.
//   node bench/hitcost-upstream.mjs PORT
import http from 'node:http';

const body = JSON.stringify({
  id: 'x', object: 'chat.completion',
  choices: [{ message: { role: 'assistant', content: 'y'.repeat(900) } }],
  usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 },
});
http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
}).listen(Number(process.argv[2]), '127.0.0.1');
