// summarize.mjs — the "app" under test: two functions that call the OpenAI API.
//
// The client is configured entirely from the environment, as the official SDK
// does by itself: OPENAI_API_KEY, and OPENAI_BASE_URL (unset: https://api.openai.com/v1;
// record.sh and replay.sh point it at promptcache instead).
import OpenAI from 'openai';

const client = new OpenAI();

export const MODEL = 'gpt-4o-mini';

// The prompt is part of the recording's key: change a word here and replay
// misses until you re-record. SUMMARY_STYLE exists only so that
// tests/e2e/example_ci.test.mjs can change the prompt without editing files.
const STYLE = process.env.SUMMARY_STYLE || 'plain';
const SUMMARY_PROMPT = `Summarize the user's text in one ${STYLE} sentence of at most 12 words.`;
const HAIKU_PROMPT = 'Write a haiku (three lines, no title) about the topic the user gives.';

/** One short sentence summarizing `text`. */
export async function summarize(text) {
  const completion = await client.chat.completions.create({
    model: MODEL,
    temperature: 0,
    messages: [
      { role: 'system', content: SUMMARY_PROMPT },
      { role: 'user', content: text },
    ],
  });
  return completion.choices[0].message.content.trim();
}

/** A haiku about `topic`, streamed: returns the text and how many chunks carried it. */
export async function streamHaiku(topic) {
  const stream = await client.chat.completions.create({
    model: MODEL,
    temperature: 0,
    stream: true,
    messages: [
      { role: 'system', content: HAIKU_PROMPT },
      { role: 'user', content: topic },
    ],
  });
  let text = '';
  let chunks = 0;
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta?.content;
    if (delta) {
      text += delta;
      chunks++;
    }
  }
  return { text: text.trim(), chunks };
}
