-- wrk script: every request is a realistic Teams activity ('digest advisors'
-- in a personal chat) with a unique activity id, so each one is a real
-- enqueue, never a dedup hit; each thread walks all 20,000 conversation ids
-- in turn (from its own offset), so at 14,000 requests/s a conversation gets
-- one every ~1.4 s, far inside Teams' pacing (7 a second, 60 in 30 s), and
-- serviceUrl comes from $SERVICE_URL (digest-stub, see webhook.sh). Thread
-- id + counter keep ids unique across wrk's threads. With $BOT_TOKEN set every
-- request carries it as its Authorization (webhook_full.sh).
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local service_url = os.getenv("SERVICE_URL") or "https://smba.trafficmanager.net/amer/"

function init(args)
  thread_id = tid or 0
  run_id = os.time()
end

local template = [[{"type":"message","id":"%s","timestamp":"2017-02-01T21:10:07.437Z",]] ..
  [["serviceUrl":"%s","channelId":"msteams",]] ..
  [["from":{"id":"29:1XJKJMvc5GBtc2JwZq0oj8tHZmzrQgFmB39ATiQWA85gQtHieVkKilBZ9XHoq9j7Zaqt7CZ-NJWi7me2kHTL3Bw",]] ..
  [["name":"Megan Bowen","aadObjectId":"7faf8ab2-3d56-4244-b585-20c8a42ed2b8"},]] ..
  [["conversation":{"conversationType":"personal","tenantId":"72f988bf-86f1-41af-91ab-2d7cd011db47",]] ..
  [["id":"a:17I0kl9EkpE1O9PH5TWrzrLNwnWWcfrU7QZjKR0WSfOpzbfcAg2IaydGElSo10tVr4C7Fc6GtieTJX663WuJCc1uA83n4CSrHSgGBj5XNYLcVlJAs2ZX8DbYBPck201w-%d"},]] ..
  [["recipient":{"id":"28:c9e8c047-2a74-40a2-b28a-b162d5f5327c","name":"Teams TestBot"},]] ..
  [["textFormat":"plain","text":"digest advisors",]] ..
  [["entities":[{"locale":"en-US","country":"US","platform":"Windows","timezone":"America/Los_Angeles","type":"clientInfo"}],]] ..
  [["channelData":{"tenant":{"id":"72f988bf-86f1-41af-91ab-2d7cd011db47"}},"locale":"en-US"}]]

local headers = { ["Content-Type"] = "application/json" }
-- $BOT_TOKEN (digest-stub token): one reused signed token, as a channel sends.
local bot_token = os.getenv("BOT_TOKEN")
if bot_token and bot_token ~= "" then headers["Authorization"] = "Bearer " .. bot_token end

function request()
  counter = counter + 1
  local id = string.format("b%d-%d-%d", run_id, thread_id, counter)
  -- Not counter * 8: with one thread that was 2,500 conversations, and past
  -- ~12,000 requests/s they reached the 60-in-30-s pace.
  local conv = (counter + thread_id * 2503) % 20000
  local body = string.format(template, id, service_url, conv)
  return wrk.format("POST", "/api/messages", headers, body)
end

local statuses = {}
function response(status, hdrs, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("errors: connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
