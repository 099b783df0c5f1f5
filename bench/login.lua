-- wrk script for the login bench: POST /auth/login with correct passwords,
-- cycling through the accounts listed (one email per line) in the file named
-- by the USERS environment variable. Tallies the answers: in done() it prints
-- "statuses: 200=… 503=… other=…" and how many 503s did not carry the
-- service_busy code (must be 0), so an overload run can show that nothing
-- failed except with 503 service_busy.
local users, n, i = {}, 0, 0
local threads = {}
ok, busy, busy_bad, other = 0, 0, 0, 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("USERS")) do
    n = n + 1
    users[n] = line
  end
  i = math.random(n)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  i = i % n + 1
  return wrk.format(nil, "/auth/login", nil,
    '{"email":"' .. users[i] .. '","password":"B3nch!pass"}')
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 503 then
    busy = busy + 1
    if not string.find(body, '"code":"service_busy"', 1, true) then busy_bad = busy_bad + 1 end
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local a, b, c, d = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("ok"); b = b + t:get("busy"); c = c + t:get("busy_bad"); d = d + t:get("other")
  end
  io.write(string.format("statuses: 200=%d 503=%d other=%d; 503 without service_busy=%d; socket errors=%d\n",
    a, b, d, c, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout))
end
