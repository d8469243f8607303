-- wrk script: POST /v1/jobs with a small chat-completion job; prints one RESULT line.
-- AUTH=<API key> wrk -t2 -c64 -d10s -s bench/submit.lua http://127.0.0.1:PORT/v1/jobs
local auth = os.getenv("AUTH") or "missing"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. auth
wrk.body = '{"lane":"bench-submit","request":{"model":"fake-model","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":16}}'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {} end
function response(status, headers, body) codes[status] = (codes[status] or 0) + 1 end
function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    local c = t:get("codes")
    if c then for k, v in pairs(c) do agg[k] = (agg[k] or 0) + v end end
  end
  local parts = {}
  for k, v in pairs(agg) do table.insert(parts, k .. "=" .. v) end
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f codes=%s errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, table.concat(parts, ","),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
