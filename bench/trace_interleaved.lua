-- wrk script: GET the trace of a random order of an interleaved store (bench/gen_interleaved.py keys:
-- SO-00000001.., shipment:000000000001..); 3 in 4 by order id, 1 in 4 by its shipment key.
-- args: the number of orders to pick from (every one of them must be stored).
local orders = 10000
function init(args)
  orders = tonumber(args[1]) or orders
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  local n = math.random(1, orders)
  if math.random(1, 4) == 1 then
    return wrk.format("GET", string.format("/api/v1/traces/shipment:%012d", n))
  end
  return wrk.format("GET", string.format("/api/v1/traces/SO-%08d", n))
end
function response(status, headers, body)
  if status ~= 200 then wrk.thread:stop() end
end
