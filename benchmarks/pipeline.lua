-- wrk script: HTTP/1.1 pipelining. Every write sends DEPTH requests for
-- GET /hello back to back on one connection (wrk then counts each response).
--   wrk -t1 -c50 -d5s -s benchmarks/pipeline.lua http://127.0.0.1:P/hello -- 16
-- DEPTH is the first script argument after "--" (16 when absent).

init = function(args)
  local depth = tonumber(args[1]) or 16
  local path = wrk.path
  if path == nil or path == "" or path == "/" then
    path = "/hello"
  end
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format("GET", path)
  end
  req = table.concat(r)
end

request = function()
  return req
end
