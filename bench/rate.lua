-- wrk script for open-loop (constant rate) load: the chat body of chat.lua, sent on a fixed
-- schedule of $RATE requests per second (spread over wrk's threads). wrk2 is not in Debian, so
-- the schedule is kept here: each request takes the next slot of the thread's timetable
-- (start + k / rate), and `delay()` holds the connection until that slot. A connection stuck on
-- a slow answer does not slow the schedule: the next idle connection takes the slot (late slots
-- go out at once), so the offered rate stays constant as long as enough connections are idle.
-- When the server falls behind, slots go out late: `lag_*` in the RESULT line say by how much
-- (wrk's own latency starts at the send, so a late send is not in it; the lag is).
-- wrk's timers have millisecond resolution, so at high rates requests leave in 1 ms bursts.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in five words."}]}'
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("TOKENCTL_KEY")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

-- Per thread (each wrk thread has its own Lua state).
local interval_us, start_us, slot = nil, nil, 0
lag_count, lag_over_1ms, lag_over_5ms, lag_max_us = 0, 0, 0, 0

function init(args)
  local rate = tonumber(os.getenv("RATE") or "1000")
  local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
  interval_us = 1e6 / (rate / nthreads)
end

function delay()
  local now = now_us()
  if not start_us then start_us = now end
  local due = start_us + slot * interval_us
  slot = slot + 1
  local wait = due - now
  if wait <= 0 then
    local lag = -wait
    lag_count = lag_count + 1
    if lag > 1000 then lag_over_1ms = lag_over_1ms + 1 end
    if lag > 5000 then lag_over_5ms = lag_over_5ms + 1 end
    if lag > lag_max_us then lag_max_us = lag end
    return 0
  end
  return math.floor(wait / 1000)
end

done = function(summary, latency, requests)
  local e = summary.errors
  local late1, late5, lagmax = 0, 0, 0
  for _, t in ipairs(threads) do
    late1 = late1 + t:get("lag_over_1ms")
    late5 = late5 + t:get("lag_over_5ms")
    lagmax = math.max(lagmax, t:get("lag_max_us"))
  end
  io.write(string.format("RESULT requests=%d errors=%d non2xx=%d rps=%.0f p50_us=%d p90_us=%d p99_us=%d mean_us=%.1f late1ms=%d late5ms=%d lagmax_us=%.0f\n",
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    late1, late5, lagmax))
end
