-- wrk script: like http_bodies.lua, but every pass over the bodies after the first stores new events:
-- pass p (p >= 1) prefixes each event's id, subject and first link with "p<p>-", so the store keeps growing
-- (new orders with the same shape) for as long as wrk runs. bench/http_rss.sh uses it to measure the
-- server's memory as the store grows to millions of events.
-- args: DIR COUNT THREADS; the bodies are DIR/body-000000.ndjson ... (COUNT of them).
local n_threads = 0
function setup(thread)
  thread:set("index", n_threads)
  n_threads = n_threads + 1
end
local bodies = {}
local headers = {}
local i = 0
local pass = 0
function init(args)
  local dir, n, step = args[1], tonumber(args[2]), tonumber(args[3])
  headers = {["Content-Type"] = "application/x-ndjson"}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  for b = index, n - 1, step do
    local f = assert(io.open(string.format("%s/body-%06d.ndjson", dir, b), "rb"))
    bodies[#bodies + 1] = f:read("*a")
    f:close()
  end
end
function request()
  i = i + 1
  if i > #bodies then i = 1; pass = pass + 1 end
  local body = bodies[i]
  if pass > 0 then
    local p = "p" .. pass .. "-"
    body = body:gsub('"id":"', '"id":"' .. p):gsub('"subject":"', '"subject":"' .. p):gsub('"links":%["', '"links":["' .. p)
  end
  return wrk.format("POST", "/v1/events", headers, body)
end
