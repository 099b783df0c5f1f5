-- wrk script for POST /auth/introspect: cycles over the API keys in the file
-- named by KEYS (one per line). Thread i of n takes every n-th line, so with
-- more keys than requests every request is a first use (cold cache).
-- A file with fewer keys than threads is shared whole.
local keys = {}
local counter = 0
local i = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  local n = tonumber(os.getenv("WRK_THREADS") or "2")
  local all = {}
  for line in io.lines(os.getenv("KEYS")) do table.insert(all, line) end
  for j, line in ipairs(all) do
    -- fewer keys than threads (the warm case): every thread uses them all
    if #all < n or (j - 1) % n == (id - 1) then table.insert(keys, line) end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  i = i % #keys + 1
  return wrk.format(nil, "/auth/introspect", nil, '{"api_key":"' .. keys[i] .. '"}')
end
