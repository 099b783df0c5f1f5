-- wrk script for the refresh grant: every request spends one refresh token and
-- its response carries the next one, so each connection walks its own rotation
-- chain. Tokens come from the file named by the TOKENS environment variable,
-- one per line; thread i takes every n-th line.
local tokens = {}
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  local n = tonumber(os.getenv("WRK_THREADS") or "2")
  local i = 0
  for line in io.lines(os.getenv("TOKENS")) do
    if i % n == (id - 1) then table.insert(tokens, line) end
    i = i + 1
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local t = table.remove(tokens, 1) or "spent-token-xxxxxxxxxxxxxxxx"
  return wrk.format(nil, "/auth/token", nil, '{"refresh_token":"' .. t .. '"}')
end

function response(status, headers, body)
  local t = body:match('"refresh_token":"([^"]+)"')
  if t then table.insert(tokens, t) end
end
