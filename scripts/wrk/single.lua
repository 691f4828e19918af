-- One event per request for wrk (scripts/wrk-ingest.sh), ids unique per thread; TOK is the bearer credential.
local counter = 0
local tid = 0
function setup(thread) thread:set("tid", tid); tid = tid + 1 end
function request()
  counter = counter + 1
  local body = string.format('{"event_id":"s%d-%d","event_name":"page_view","user_id":"user-%d","properties":{"page":"/p/%d"}}', tid, counter, counter % 5000, counter % 100)
  return wrk.format("POST", "/api/v1/analytics/events", {["Content-Type"]="application/json", ["Authorization"]="Bearer " .. os.getenv("TOK")}, body)
end
