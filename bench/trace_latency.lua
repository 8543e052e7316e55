-- wrk script: GET the trace of a random order (3 in 4) or of its shipment key (1 in 4).
local orders = 125000
function init(args)
  orders = tonumber(args[1]) or orders
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  local n = math.random(1, orders)
  if math.random(1, 4) == 1 then
    return wrk.format("GET", string.format("/api/v1/traces/shipment:1Z%010d", n))
  end
  return wrk.format("GET", string.format("/api/v1/traces/SO-%08d", n))
end
function response(status, headers, body)
  if status ~= 200 then wrk.thread:stop() end
end
