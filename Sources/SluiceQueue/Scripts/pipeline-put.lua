--[[
  pipeline-put: stores a tenant's pipeline definition (POST /v1/pipelines creates,
  PUT /v1/pipelines/{name} replaces).

  KEYS[1]  the tenant's pipelines hash (field: the pipeline's name, value: its definition, JSON)
  ARGV[1]  'create' or 'replace'
  ARGV[2]  the pipeline's name
  ARGV[3]  its definition (JSON, already checked by the caller)
  ARGV[4]  the most pipelines the tenant may store

  Returns  'created' or 'replaced'; 'exists' (create: the name is taken), 'missing' (replace: no
           such pipeline), 'full' (create: the tenant has ARGV[4] already).

  Guarantee: the check and the write are one atomic step, so two creates of one name make one
  pipeline, a replace never brings back a pipeline deleted meanwhile, and the tenant's count
  never passes ARGV[4].
]]
local hash, mode, name, definition, limit = KEYS[1], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local exists = redis.call('HEXISTS', hash, name) == 1
if mode == 'create' then
  if exists then return 'exists' end
  if redis.call('HLEN', hash) >= limit then return 'full' end
  redis.call('HSET', hash, name, definition)
  return 'created'
end
if not exists then return 'missing' end
redis.call('HSET', hash, name, definition)
return 'replaced'
