--[[
  webhook-claim: takes the chosen deliveries, pushing each a lease ahead in the due set, so another
  sender takes it if this one vanishes mid-send; and pushes the deferred ones (a key already at its
  cap of concurrent sends) a short delay ahead, so that other keys' deliveries behind them reach
  the head of the set. Only a delivery still due is touched: one another sender took in the
  meantime (its score is ahead of now) is neither taken twice nor deferred.

  KEYS[1]  the due set
  ARGV[1]  the lease (ms)     ARGV[2]  the deferral (ms)     ARGV[3]  n, how many ids to take
  ARGV[4 .. 3+n]  the ids to take      ARGV[4+n ..]  the ids to defer

  Returns  the ids taken.
]]
--!include now.lua
local take = tonumber(ARGV[3])
local taken = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now then
    if i < 4 + take then
      redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id)
      taken[#taken + 1] = id
    else
      redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
    end
  end
end
return taken
