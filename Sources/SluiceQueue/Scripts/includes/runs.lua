-- A run's version (`v`) moved on by one. A value that is not a whole number (a damaged hash)
-- starts again from 1 instead of failing an HINCRBY after the script's first writes (the
-- advancer would then fail on that run for good): the compare-and-set still sees a change.
local function bumpRunVersion(runKey)
  local reply = redis.pcall('HINCRBY', runKey, 'v', 1)
  if type(reply) == 'table' and reply.err then redis.call('HSET', runKey, 'v', 1) end
end
