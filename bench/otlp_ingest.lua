-- wrk script: POSTs pre-built OTLP protobuf bodies (100 spans each), each once per thread pass.
local bodies = {}
local i = 0
function init(args)
  local dir, n = args[1], tonumber(args[2])
  for k = 0, n - 1 do
    local f = io.open(dir .. "/body-" .. k .. ".pb", "rb")
    bodies[#bodies + 1] = f:read("*a")
    f:close()
  end
end
function request()
  i = i % #bodies + 1
  return wrk.format("POST", "/v1/traces", {["Content-Type"] = "application/x-protobuf"}, bodies[i])
end
