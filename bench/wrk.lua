-- wrk.lua — POSTs chat-completion bodies read from $BENCH_BODIES (one per line).
-- BENCH_COUNT=1: the first body on every request (static request, cheapest for wrk).
-- BENCH_COUNT=N: N distinct bodies, round-robin; thread t of $BENCH_THREADS
-- owns bodies t, t+T, t+2T... (each body is held by one thread only, which
-- keeps wrk's memory at one copy of the set), pre-formatted in init().
local file = os.getenv("BENCH_BODIES")
local count = tonumber(os.getenv("BENCH_COUNT") or "1")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"

if count <= 1 then
  local f = assert(io.open(file, "rb"))
  wrk.body = f:read("*l")
  f:close()
else
  local tid_counter = 0
  function setup(thread)
    thread:set("tid", tid_counter)
    tid_counter = tid_counter + 1
  end

  local reqs, n, idx = {}, 0, 0

  function init(args)
    local f = assert(io.open(file, "rb"))
    local i = 0
    for line in f:lines() do
      if i >= count then break end
      if i % nthreads == tid then
        n = n + 1
        reqs[n] = wrk.format(nil, nil, nil, line)
      end
      i = i + 1
    end
    f:close()
    idx = 0
  end

  function request()
    idx = idx + 1
    if idx > n then idx = 1 end
    return reqs[idx]
  end
end
