--[[
  budget-settle: books a finished job's actual cost in its budgets, once, replacing its
  reservation, and reports the alert thresholds (50, 80, 100 % of the limit) crossed for the
  first time in the period.

  KEYS[1]       the job's marker, "sluice:{budgets}:settled:<job id>"
  KEYS[2..n+1]  the budgets' period hashes (as in budget-reserve), for the period the job was
                created in
  ARGV[1]       the actual cost, micro-dollars (>= 0)
  ARGV[2]       the estimate the job was reserved at, micro-dollars
  ARGV[3]       the hashes' and the markers' TTL, ms
  ARGV[3+i]     budget i's limit, micro-dollars

  Returns  {} when the job was already settled; else a flat list {i, percent, spent, ...}: each
           threshold budget i crossed now, with its spend after this job.

  Idempotent per job: the marker (SET NX) is taken first, so a job read twice by the archiver's
  feed books nothing twice. A threshold marker "<hash>:alert:<percent>" (SET NX) makes each
  alert fire once per budget and period. reserved never goes below 0 (a job submitted before
  its budget was configured reserved nothing).
]]
-- An amount in a budget's hash: a whole number of micro-dollars, 0 when absent or not one
-- (a value set by hand: not a number, NaN, negative, past 9e15). Written back with '%d': a
-- number given to redis.call as is becomes '%.14g' text, "1.5e+14" past 10^14.
local function amount(value)
  local n = tonumber(value or '0')
  if n == nil or n ~= n or n < 0 or n > 9e15 then return 0 end
  return math.floor(n)
end
local actual, estimate, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ttl) then return {} end
local crossed = {}
for i = 2, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 'spent', 'reserved')
  local spent = math.min(amount(f[1]) + actual, 9e15)
  redis.call('HSET', KEYS[i], 'spent', string.format('%d', spent), 'reserved', string.format('%d', math.max(0, amount(f[2]) - estimate)))
  redis.call('PEXPIRE', KEYS[i], ttl)
  local limit = tonumber(ARGV[2 + i])
  for _, percent in ipairs({50, 80, 100}) do
    if spent * 100 >= limit * percent then
      if redis.call('SET', KEYS[i] .. ':alert:' .. percent, '1', 'NX', 'PX', ttl) then
        crossed[#crossed + 1] = i - 1
        crossed[#crossed + 1] = percent
        crossed[#crossed + 1] = spent
      end
    end
  end
end
return crossed
