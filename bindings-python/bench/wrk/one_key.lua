-- wrk script: GET /v1/status, every request with the one API key KEY; counts the answers
-- by status in each wrk thread and prints one EXACT line with the totals.
local threads = {}

wrk.method = "GET"
wrk.path = "/v1/status"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  admitted, refused, other = 0, 0, 0
end

function response(status, headers, body)
  if status == 200 then
    admitted = admitted + 1
  elseif status == 429 then
    refused = refused + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local a, r, o = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("admitted")
    r = r + t:get("refused")
    o = o + t:get("other")
  end
  io.write(string.format("EXACT admitted=%d refused=%d other=%d requests=%d seconds=%.3f\n",
    a, r, o, summary.requests, summary.duration / 1e6))
end
