--[[
  webhook-create: creates a delivery, due now, unless it exists (a replayed event creates
  nothing twice: the delivery id is its job's or batch's).

  KEYS[1]  the delivery's hash          KEYS[2]  the due set
  KEYS[3]  the subject's delivery list
  ARGV     id, subject (job or batch id), url, key id ('' = none), type, body, retention (ms)

  Returns  1 when created, 0 when it already existed.
]]
--!include now.lua
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'job', ARGV[2], 'url', ARGV[3], 'key', ARGV[4], 'type', ARGV[5],
  'body', ARGV[6], 'status', 'pending', 'attempts', 0, 'created', now, 'next_at', now)
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[7])
return 1
