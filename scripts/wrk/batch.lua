-- 500-event batches for wrk (scripts/wrk-ingest.sh); TOK is the bearer credential.
-- 500-event batches with ids unique across threads and requests.
local counter = 0
local tid = 0
function setup(thread)
  thread:set("tid", tid)
  tid = tid + 1
end
local names = {"page_view", "click", "purchase", "signup"}
function request()
  counter = counter + 1
  local parts = {}
  for i = 1, 500 do
    local n = counter * 500 + i
    parts[i] = string.format('{"event_id":"w%d-%d","event_name":"%s","user_id":"user-%d","session_id":"s-%d","properties":{"page":"/p/%d","amount":%d.5}}',
      tid, n, names[(n % 4) + 1], n % 5000, n % 20000, n % 100, n % 1000)
  end
  local body = '{"events":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/api/v1/analytics/events/batch", {["Content-Type"]="application/json", ["Authorization"]="Bearer " .. os.getenv("TOK")}, body)
end
