--[[
  The key layout the job scripts share. KeyLayout.swift is the one place that defines it: the
  placeholders below (a dollar sign, then a name in braces) are filled in from
  `KeyLayout.scriptConstants` when a script is loaded, so no script spells a key name of its own.
  Every other key a script touches is under a prefix it is given (KEYS[1], a lane's
  "<root>{<tag>}:") or one derived here from a lane tag.
]]
local KEY_ROOT = '${root}'
-- Outside every lane's slot (see KeyLayout.swift on Redis Cluster): the names of all lanes, and
-- per API key its jobs not yet finished (for caps).
local LANES = '${lanes}'
local OPEN_JOBS = '${openJobs}'
-- The pipeline runs' stream (see KeyLayout+Runs.swift): every job that has a `run` field adds an
-- entry when it ends, in the same script call; the run advancer reads it. Hard cap only.
local RUN_EVENTS = '${runEvents}'
local RUNS_PREFIX = '${runsPrefix}'
local RUN_EVENTS_MAX = '${runEventsMax}'

-- The key prefix of the lane(s) with this tag.
local function tagPrefix(tag) return KEY_ROOT .. '{' .. tag .. '}:' end

-- A job's hash, found from its id alone: the id carries the tag of the lane that created it (its
-- home), at characters ${idTagFirst}…${idTagLast}. A job moved to a fallback lane keeps its id and its hash at
-- home; its `at` field holds the tag of the lane it is in now, whose structures it uses from then on.
local function jobKey(id)
  return KEY_ROOT .. '{' .. string.sub(id, ${idTagFirst}, ${idTagLast}) .. '}:job:' .. id
end

-- The key prefix of the lane a job is in: its home's, unless it was moved (`at`).
local function lanePrefix(home, at)
  if at and at ~= '' then return tagPrefix(at) end
  return home
end
