-- wrk-fwd.lua — every request a new chat body: a counter spliced into one
-- body template (bench/gen.mjs template), so a caching proxy never sees the
-- same key twice and wrk stays cheap (one string concat per request).
--   BENCH_TEMPLATE  file whose first line is the body, with "{SEQ}" in it
--   BENCH_SEQ       first counter value (give every run its own range)
--   BENCH_THREADS   wrk -t (thread t sends SEQ+t, SEQ+t+T, ...)
--   BENCH_NOSTORE=1 adds "Cache-Control: no-store"
-- The counter is printed with 10 digits, so every body has the same length.
local file = os.getenv("BENCH_TEMPLATE")
local base = tonumber(os.getenv("BENCH_SEQ") or "0")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
if os.getenv("BENCH_NOSTORE") == "1" then
  wrk.headers["Cache-Control"] = "no-store"
end

local tid_counter = 0
function setup(thread)
  thread:set("tid", tid_counter)
  tid_counter = tid_counter + 1
end

local pre, post, seq

function init(args)
  local f = assert(io.open(file, "rb"))
  local line = f:read("*l")
  f:close()
  local i = assert(line:find("{SEQ}", 1, true), "no {SEQ} in the template")
  pre, post = line:sub(1, i - 1), line:sub(i + 5)
  seq = base + (tid or 0)
end

function request()
  local body = pre .. string.format("%010d", seq) .. post
  seq = seq + nthreads
  return wrk.format(nil, nil, nil, body)
end
