--[[
  Job transitions, shared by the job scripts.

  A script that moves a job from one state to another records the move twice: a line in the
  job's timeline (its hash's `log`) and an entry in its lane's event stream (which also counts it
  in the lane's meta hash). `transition` does both; `finishJob` first ends the job in a terminal
  state. Both take one table with named fields:

    prefix    the key prefix of the lane the job is in now
    cap       the event stream's hard cap (approximate MAXLEN)
    lane      that lane's name
    key, id   the job's hash and its id
    from, to  the state it leaves and the state it enters (equal for a note, such as a cancel request)
    now       Redis time, ms
    info      what the timeline line and the event say about it (nil: nothing)
  and for finishJob also:
    ttl       the result TTL, ms (0 keeps the hash forever)
    deadline  the job's `deadline` field (when set, its entry in the lane's deadline set goes)

  The scripts that move many jobs at once (enqueue, lease, complete) write the same records with
  emit and logLine directly, one event per call and transition rather than one per job.
]]
--!include keys.lua
--!include clock.lua
--!include lane.lua

-- Appends one transition of one or more jobs (ids joined by commas) to the lane's capped
-- event stream: one entry per script call and transition, not one per job. It also counts the
-- transition in the lane's meta hash (the autoscaler's and /metrics' signals, read without
-- scanning): `n:<state>` jobs that entered each state, `n:arrived` jobs created, `n:served`
-- calls that ended (left `leased`).
local function emit(prefix, cap, ids, lane, from, to, now, info)
  local _, commas = string.gsub(ids, ',', '')
  local meta = prefix .. 'lane:' .. lane .. ':meta'
  if from ~= to then redis.call('HINCRBY', meta, 'n:' .. to, commas + 1) end
  if from == '' then redis.call('HINCRBY', meta, 'n:arrived', commas + 1) end
  if from == 'leased' and to ~= 'leased' then redis.call('HINCRBY', meta, 'n:served', commas + 1) end
  if info then
    redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', cap, '*',
      'jobs', ids, 'lane', lane, 'from', from, 'to', to, 't', now, 'info', info)
  else
    redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', cap, '*',
      'jobs', ids, 'lane', lane, 'from', from, 'to', to, 't', now)
  end
end

-- One line of a job's timeline (its hash's `log` field): "<ms> <state>[ <info>]\n". The job's
-- creation is not logged: its `created` field is the timeline's first entry.
local function logLine(now, state, info)
  if not info or info == '' then return now .. ' ' .. state .. '\n' end
  local clean = string.gsub(string.sub(info, 1, 300), '[\r\n]', ' ')
  return now .. ' ' .. state .. ' ' .. clean .. '\n'
end

-- Appends one line to a job's timeline.
local function appendLog(jobKey, now, state, info)
  redis.call('HSET', jobKey, 'log', (redis.call('HGET', jobKey, 'log') or '') .. logLine(fmt(now), state, info))
end

-- Tells the pipeline runs' advancer that a step's job ended (`run` is the job's `run` field,
-- "<run id> <step> <item>"): it counts the end in the run's hash (`d:<step>`, and `f:<step>`
-- when it did not succeed), so the advancer knows a step is done without reading its jobs, and
-- adds an entry to the runs stream to wake it. Both are written by the same script call that ends
-- the job, so that an end is never lost, never counted twice, and never reported without having
-- happened. A run that is gone (expired) is not recreated by the count. A count that is not a
-- whole number (a damaged hash) never fails the script that ends the job (its writes so far
-- would stay, the job half-ended, and every maintenance pass of the lane would fail the same
-- way): it is set to 1, and the step counted failed, so the run ends instead of waiting forever
-- for a count it can no longer reach.
local function runCount(runKey, field)
  local reply = redis.pcall('HINCRBY', runKey, field, 1)
  if type(reply) == 'table' and reply.err then
    redis.call('HSET', runKey, field, 1)
    return false
  end
  return true
end

local function runEnded(run, id, state)
  local runId, step = string.match(run, '^(%S+) (%S+)')
  if runId then
    local runKey = RUNS_PREFIX .. 'run:' .. runId
    if redis.call('EXISTS', runKey) == 1 then
      local counted = runCount(runKey, 'd:' .. step)
      if state ~= 'succeeded' or not counted then runCount(runKey, 'f:' .. step) end
    end
  end
  redis.call('XADD', RUN_EVENTS, 'MAXLEN', '~', RUN_EVENTS_MAX, '*', 'run', run, 'job', id, 'to', state)
end

-- Records a terminal state: stamps it, drops the deadline entry, sets the result TTL, and wakes
-- anyone waiting on the job. The caller has already taken the job out of every other structure
-- (or left a tombstone). The stale lease token may stay in the hash: every holder operation
-- checks the state first. A pipeline step's job also adds its end to the runs stream.
local function finish(prefix, lane, jobKey, id, state, now, ttl, deadline)
  local f = redis.call('HMGET', jobKey, 'key', 'run')
  local submitter = f[1]
  if submitter then redis.call('HINCRBY', OPEN_JOBS, submitter, -1) end
  -- A pipeline step's job tells the run advancer, atomically with its end (runEnded).
  if f[2] then runEnded(f[2], id, state) end
  redis.call('HSET', jobKey, 'state', state, 'finished', now)
  if deadline then redis.call('ZREM', laneKey(prefix, lane, 'deadlines'), id) end
  if tonumber(ttl) > 0 then redis.call('PEXPIRE', jobKey, ttl) end
  redis.call('PUBLISH', prefix .. 'done', id)
end

-- Records one job's move (see the fields above): its timeline line and its event.
local function transition(t)
  appendLog(t.key, t.now, t.to, t.info)
  emit(t.prefix, t.cap, t.id, t.lane, t.from, t.to, t.now, t.info)
end

-- Ends a job in the terminal state `t.to` (see the fields above) and records the move.
local function finishJob(t)
  finish(t.prefix, t.lane, t.key, t.id, t.to, t.now, t.ttl, t.deadline)
  transition(t)
end
