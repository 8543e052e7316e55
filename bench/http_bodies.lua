-- wrk script: POSTs pre-split NDJSON bodies (100 events each; bench/http_ingest.sh cuts them from the
-- interleaved file) in file order. Thread k of T takes bodies k, k+T, k+2T, ..., so the threads
-- together send the file in about its arrival order, and no body twice within a pass.
-- args: DIR COUNT THREADS; the bodies are DIR/body-000000.ndjson ... (COUNT of them).
local n_threads = 0
function setup(thread)
  thread:set("index", n_threads)  -- wrk calls setup(thread) just before that thread's init()
  n_threads = n_threads + 1
end
local bodies = {}
local i = 0
function init(args)
  local dir, n, step = args[1], tonumber(args[2]), tonumber(args[3])
  local headers = {["Content-Type"] = "application/x-ndjson"}
  for k, v in pairs(wrk.headers) do headers[k] = v end  -- wrk -H (e.g. Authorization) as well
  -- Requests are formatted here, before the clock starts, so that wrk's own CPU goes to sending.
  for b = index, n - 1, step do
    local f = assert(io.open(string.format("%s/body-%06d.ndjson", dir, b), "rb"))
    bodies[#bodies + 1] = wrk.format("POST", "/v1/events", headers, f:read("*a"))
    f:close()
  end
end
-- Past the last body the requests repeat (the server counts those as duplicates, not stored).
function request()
  i = i % #bodies + 1
  return bodies[i]
end
