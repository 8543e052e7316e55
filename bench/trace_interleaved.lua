-- wrk script: GET the trace of a random order of an interleaved store by its id (bench/gen_interleaved.py
-- orders SO-00000001..; their shipment keys differ by carrier, so they are not asked for).
-- args: the number of orders to pick from (every one of them must be stored).
local orders = 10000
function init(args)
  orders = tonumber(args[1]) or orders
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  local n = math.random(1, orders)
  return wrk.format("GET", string.format("/api/v1/traces/SO-%08d", n))
end
function response(status, headers, body)
  if status ~= 200 then wrk.thread:stop() end
end
