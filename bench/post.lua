-- wrk script: POST the JSON body from the file named by BODY_FILE.
local f = assert(io.open(os.getenv("BODY_FILE"), "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

-- Count non-2xx answers so a run with errors cannot pass as fast.
local failures = 0
function response(status, headers, body)
  if status >= 300 then failures = failures + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("non2xx %d\n", summary.errors.status))
end
