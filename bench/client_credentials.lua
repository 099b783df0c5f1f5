-- wrk script for the client-credentials grant: form bodies cycling over the
-- clients listed in the file named by CLIENTS ("client_id secret" per line),
-- so no single client:<id> rate-limit bucket fills up.
local bodies = {}
local i = 0

function init(args)
  for line in io.lines(os.getenv("CLIENTS")) do
    local id, secret = line:match("^(%S+) (%S+)$")
    if id then
      table.insert(bodies, "grant_type=client_credentials&client_id=" .. id ..
                   "&client_secret=" .. secret .. "&scope=read&audience=orders-api")
    end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  i = i % #bodies + 1
  return wrk.format(nil, "/auth/token", nil, bodies[i])
end
