--[[
  Every helper of the job scripts at once, for a script that uses most of them. A script includes
  only what it uses (each file pulls in what it needs itself, and each is included once), so
  that its prologue defines no function it never calls; every call of a script pays for its
  prologue.

    keys.lua        the key names (filled in from KeyLayout.swift), jobKey, lanePrefix
    clock.lua       nowMillis, fmt
    lane.lua        laneKey, readyList, classesKey
    ready.lua       the ready order: signalReady, noteReady, pushReady, tombstone
    leases.lua      lease groups: leaseGroup, groupKey, release
    transition.lua  the timeline and the event stream: emit, logLine, appendLog, and ending a
                    job: transition{}, finishJob{}
]]
--!include keys.lua
--!include clock.lua
--!include lane.lua
--!include ready.lua
--!include leases.lua
--!include transition.lua
