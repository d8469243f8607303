-- Stored counts another writer may have spoiled, for the route scripts.

-- A stored count: a whole number 0..2^53 written without spaces, else 0 (as Swift's
-- Bounded.int reads it), so a script can add to it and write it back (HSET, SET) where an
-- HINCRBY or INCR on garbage would fail after the script's earlier writes.
local function storedCount(value)
  if type(value) ~= 'string' or string.find(value, '%s') then return 0 end
  local number = tonumber(value)
  if number and number == number and number >= 0 and number <= 9007199254740992 and math.floor(number) == number then
    return number
  end
  return 0
end
