--[[
  cache-lookup: what a leased job with a cache key does before calling its provider. One round
  trip, atomic: a stored result wins; else the first job to ask becomes the key's leader (a marker
  holding its id, with the lease's TTL); else the job waits for the leader.

  KEYS[1]  the cache's prefix (`sluice:{cache}:`): every cache key is in this one slot
  ARGV[1]  the request's cache key (hex digest)
  ARGV[2]  the asking job's id
  ARGV[3]  the leader marker's TTL, milliseconds (the lease's: a leader that dies frees the key
           when its lease would have run out)

  Returns  {'hit', result}        a stored result (the job did not wait for it)
           {'coalesced', result}  a stored result the job waited for (it was told 'wait' before)
           {'lead'}               no result, nobody in flight: this job calls and then stores
           {'wait', leader id}    another job is calling now: come back later

  Guarantee: while a leader's marker lives, no other job of the key is told 'lead'; so the
  provider is called once per key per marker TTL, unless a leader gives up (cache-abandon) or its
  call outlives the marker. Counts hit, coalesced, miss (= lead) in `stats`, and on a hit or a
  coalesced answer adds the tokens the leader's call used (`tokens`, from cache-store) to
  `stats`'s saved_tokens.
]]
local prefix, digest, id, markerTTL = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local stats = prefix .. 'stats'
local waited = prefix .. 'waited:' .. digest
local result = redis.call('GET', prefix .. 'r:' .. digest)
if result then
  local tokens = tonumber(redis.call('HGET', prefix .. 'tokens', digest) or '0') or 0
  if tokens > 0 then redis.call('HINCRBY', stats, 'saved_tokens', tokens) end
  if redis.call('SREM', waited, id) == 1 then
    redis.call('HINCRBY', stats, 'coalesced', 1)
    return {'coalesced', result}
  end
  redis.call('HINCRBY', stats, 'hit', 1)
  return {'hit', result}
end
local marker = prefix .. 'inflight:' .. digest
local leader = redis.call('GET', marker)
if not leader or leader == id then
  redis.call('SET', marker, id, 'PX', markerTTL)
  -- A job that waited and now leads (its leader died) is no longer a follower.
  redis.call('SREM', waited, id)
  redis.call('HINCRBY', stats, 'miss', 1)
  return {'lead'}
end
redis.call('SADD', waited, id)
redis.call('PEXPIRE', waited, markerTTL * 4 + 60000)
return {'wait', leader}
