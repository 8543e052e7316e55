-- wrk script: each request POSTs 100 distinct CloudEvents as NDJSON, the lifecycle of 12-13 orders.
local counter = 0
prefix = "t"
local types = {"order.accepted", "order.validated", "order.credit_checked", "order.allocated",
               "order.released", "order.picked", "order.packed", "order.shipped"}
local data = {
  ['order.accepted'] = '{"channel":"web","region":"NE","lines":[{"line":1,"sku":"SKU-1","qty":3},{"line":2,"sku":"SKU-2","qty":1}]}',
  ['order.allocated'] = '{"warehouse":"DC-EAST","lines":[{"line":1,"sku":"SKU-1","qty_allocated":3,"warehouse":"DC-EAST"},{"line":2,"sku":"SKU-2","qty_allocated":1,"warehouse":"DC-EAST"}]}',
  ['order.shipped'] = '{"warehouse":"DC-EAST","carrier":"UPS","tracking":"1Z%s","links":["shipment:1Z%s"]}',
}
local threads = {}
function setup(thread)
  thread:set("prefix", "w" .. tostring(#threads) .. "-" .. tostring(os.time()))
  table.insert(threads, thread)
end
-- Bodies are built in init(), before the clock starts, so that wrk's own CPU goes to sending.
local bodies = {}
local next_body = 0
local function build()
  counter = counter + 1
  local parts = {}
  for i = 0, 99 do
    local n = counter * 100 + i
    local order = prefix .. "-" .. tostring(math.floor(n / 8))
    local t = types[(n % 8) + 1]
    local d = data[t] or '{"warehouse":"DC-EAST"}'
    if t == 'order.shipped' then d = string.format(d, order, order) end
    local secs = n % 86400
    parts[#parts + 1] = string.format(
      '{"specversion":"1.0","id":"%s-%d","source":"bench","type":"%s","time":"2026-11-20T%02d:%02d:%02dZ","subject":"SO-%s","traceparent":"00-%032x-%016x-01","data":%s}',
      prefix, n, t, math.floor(secs / 3600), math.floor(secs / 60) % 60, secs % 60, order, n + 1, n + 1, d)
  end
  local headers = {["Content-Type"] = "application/x-ndjson"}
  for k, v in pairs(wrk.headers) do headers[k] = v end  -- wrk -H (e.g. Authorization) as well
  return wrk.format("POST", "/v1/events", headers, table.concat(parts, "\n"))
end
function init(args)
  local n = tonumber(args[1]) or 4000
  for i = 1, n do bodies[i] = build() end
end
-- Past the prepared bodies the requests repeat (the server counts those as duplicates, not stored).
function request()
  next_body = next_body % #bodies + 1
  return bodies[next_body]
end
