-- wrk script for /auth/validate with many distinct access tokens, so almost
-- every request misses authd's signature memo (4,096 slots; the file holds
-- far more tokens, used round-robin) and pays one RSA verification, as a
-- token authd has never seen does. Tokens come from the file named by the
-- TOKENS environment variable, one per line; thread i takes every n-th line.
-- Requests are prebuilt in init() so the script adds almost nothing per
-- request.
local reqs, n, i = {}, 0, 0
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  local threads = tonumber(os.getenv("WRK_THREADS") or "2")
  local k = 0
  for line in io.lines(os.getenv("TOKENS")) do
    if k % threads == (id - 1) then
      n = n + 1
      reqs[n] = wrk.format("GET", "/auth/validate", {["Authorization"] = "Bearer " .. line})
    end
    k = k + 1
  end
end

function request()
  i = i % n + 1
  return reqs[i]
end
