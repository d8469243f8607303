-- A lane's keys: "<lane prefix>lane:<lane>:<suffix>" (the lane prefix is "<root>{<tag>}:", the
-- lane's slot; KeyLayout.swift lists every suffix).
local function laneKey(prefix, lane, suffix) return prefix .. 'lane:' .. lane .. ':' .. suffix end
local function readyList(prefix, lane, tenant, class) return laneKey(prefix, lane, 'ready:' .. tenant .. ':' .. class) end
local function classesKey(prefix, lane, tenant) return laneKey(prefix, lane, 'classes:' .. tenant) end
