-- wrk script for the refresh grant: every request spends one refresh token and
-- its response carries the next one, so each connection walks its own rotation
-- chain. Tokens come from the file named by the TOKENS environment variable,
-- one per line; thread i takes every n-th line.
--
-- wrk shares the 2 cores with authd, so this script is kept cheap: tokens sit
-- in a FIFO with head/tail indexes (no table shifting), and the next token is
-- cut out of the body with plain finds instead of a pattern match.
local tokens, head, tail = {}, 1, 0
local counter = 0
local threads = {}
local find, sub = string.find, string.sub
local KEY = '"refresh_token":"'

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  local n = tonumber(os.getenv("WRK_THREADS") or "2")
  local i = 0
  for line in io.lines(os.getenv("TOKENS")) do
    if i % n == (id - 1) then
      tail = tail + 1
      tokens[tail] = line
    end
    i = i + 1
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local t = "spent-token-xxxxxxxxxxxxxxxx"
  if head <= tail then
    t = tokens[head]
    tokens[head] = nil
    head = head + 1
  end
  return wrk.format(nil, "/auth/token", nil, '{"refresh_token":"' .. t .. '"}')
end

function response(status, headers, body)
  local _, e = find(body, KEY, 1, true)
  if e then
    local q = find(body, '"', e + 1, true)
    if q then
      tail = tail + 1
      tokens[tail] = sub(body, e + 1, q - 1)
    end
  end
end
