--[[
  webhook-record: records one attempt's outcome: pending again at its next time, or final
  (delivered, dead, disabled). A final delivery expires after the retention, a dead one is listed
  in the dead letters, and every final one is appended to the `finished` stream for the archive.

  KEYS[1]  the delivery's hash   KEYS[2]  the due set   KEYS[3]  the dead letters
  KEYS[4]  the finished stream
  ARGV     status, next_at (ms, '' = none), code ('' = none), error, retention (ms), id

  Returns  the attempts made so far (0 when the delivery is unknown).
]]
--!include now.lua
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local status, nextAt, code, err = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
local outcome = code ~= '' and code or err
redis.call('HSET', KEYS[1], 'status', status, 'last_code', code, 'last_error', err,
  'log', (redis.call('HGET', KEYS[1], 'log') or '') .. now .. ' ' .. string.gsub(string.sub(outcome, 1, 200), '\n', ' ') .. '\n')
if status == 'pending' then
  redis.call('HSET', KEYS[1], 'next_at', nextAt)
  redis.call('ZADD', KEYS[2], nextAt, ARGV[6])
else
  redis.call('HDEL', KEYS[1], 'next_at')
  redis.call('ZREM', KEYS[2], ARGV[6])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  if status == 'dead' then redis.call('RPUSH', KEYS[3], ARGV[6]) end
  local f = redis.call('HMGET', KEYS[1], 'job', 'url', 'type', 'created', 'log')
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 1000000, '*', 'id', ARGV[6], 'job', f[1] or '', 'url', f[2] or '',
    'type', f[3] or '', 'status', status, 'attempts', attempts, 'created', f[4] or '', 'finished', now, 'code', code,
    'error', err, 'log', f[5] or '')
end
return attempts
