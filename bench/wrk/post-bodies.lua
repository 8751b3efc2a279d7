-- POSTs the form bodies of the file named in BENCH_WRK_BODIES round-robin (one body per line),
-- every request built once in init, so the generator spends its time on the socket only; at the
-- end prints one JSON line with the figures bench/support.ts reads.
local requests = {}
local index = 0
local threads = 0

function setup(thread)
  thread:set("first", threads * 7919)
  threads = threads + 1
end

function init(args)
  local file = assert(io.open(os.getenv("BENCH_WRK_BODIES"), "r"))
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  for line in file:lines() do
    if #line > 0 then
      requests[#requests + 1] = wrk.format("POST", nil, headers, line)
    end
  end
  file:close()
  -- Threads start at different bodies, so they do not send the same token at the same moment.
  index = (first or 0) % #requests
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"durationMicros":%d,"p50Micros":%d,"p99Micros":%d,"non2xx":%d,"socketErrors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
