-- wrk script: a small non-streaming chat completion (streamed with CHAT_STREAM=1), the tokenctl
-- key from $TOKENCTL_KEY (if set).
wrk.method = "POST"
local stream = os.getenv("CHAT_STREAM") == "1" and ',"stream":true' or ''
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in five words."}]' .. stream .. '}'
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("TOKENCTL_KEY")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d errors=%d non2xx=%d rps=%.0f p50_us=%d p90_us=%d p99_us=%d mean_us=%.1f\n",
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
