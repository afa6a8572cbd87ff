-- The atomic step of SPEC §3 for one activity, as digestd's enqueue does it
-- (lib/store/queue.c), in one round trip: refresh the conversation
-- reference, SET NX the dedup key, and for a new request the audit record,
-- the conversation's last request and the job on the stream.
-- KEYS: 1 {P}:requests, 2 {P}:conv:<conv>, 3 {P}:dedup:<conv>:<activity id>,
--       4 {P}:req:<request id>
-- ARGV: 1 dedup TTL s, 2 request TTL s, 3 request id, 4 audience,
--       5 test email, 6 conv, 7 activity id, 8 created ms, 9… reference pairs
-- Returns {0, request id} for a new job, {1, the first request id} for a repeat.
redis.call('HSET', KEYS[2], unpack(ARGV, 9))
if redis.call('SET', KEYS[3], ARGV[3], 'NX', 'EX', ARGV[1]) then
  redis.call('HSET', KEYS[4], 'status', 'queued', 'mode', 'async', 'audience', ARGV[4],
    'test_email', ARGV[5], 'conv', ARGV[6], 'activity_id', ARGV[7], 'created_ms', ARGV[8],
    'attempts', '0')
  redis.call('EXPIRE', KEYS[4], ARGV[2])
  redis.call('HSET', KEYS[2], 'last_request_id', ARGV[3])
  redis.call('XADD', KEYS[1], '*', 'request_id', ARGV[3], 'activity_id', ARGV[7],
    'audience', ARGV[4], 'test_email', ARGV[5], 'conv', ARGV[6], 'created_ms', ARGV[8])
  return {0, ARGV[3]}
end
return {1, redis.call('GET', KEYS[3])}
