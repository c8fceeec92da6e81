-- Append one turn to a session and trim it, atomically (two concurrent appends both land).
-- KEYS[1]: the session's list. ARGV: entry ("<tokens>|<0/1>|<json>"), max_turns, max_tokens
-- (0: no cap), ttl in ms. Mirrors sessions/turns.py trim(): oldest turns first, by count, then
-- by tokens, then any turn left at the front that opens with a tool result (flag 1).
-- Returns the number of turns trimming dropped.
local key = KEYS[1]
redis.call('RPUSH', key, ARGV[1])
local max_turns = tonumber(ARGV[2])
local max_tokens = tonumber(ARGV[3])
local n = redis.call('LLEN', key)
local overflow = 0
if n > max_turns then
  overflow = n - max_turns
  redis.call('LTRIM', key, overflow, -1)
end
local entries = redis.call('LRANGE', key, 0, -1)
local drop = 0
if max_tokens > 0 then
  local total = 0
  for i = 1, #entries do
    total = total + (tonumber(string.match(entries[i], '^(%d+)|')) or 0)
  end
  while drop < #entries and total > max_tokens do
    drop = drop + 1
    total = total - (tonumber(string.match(entries[drop], '^(%d+)|')) or 0)
  end
end
while drop < #entries and string.match(entries[drop + 1], '^%d+|1|') do
  drop = drop + 1
end
if drop >= #entries then
  redis.call('DEL', key)
  return overflow + #entries
end
if drop > 0 then
  redis.call('LTRIM', key, drop, -1)
end
redis.call('PEXPIRE', key, ARGV[4])
return overflow + drop
