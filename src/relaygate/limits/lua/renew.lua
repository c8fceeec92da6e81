-- Extend leases still held by a live process: ZADD XX only refreshes members that exist, so a
-- lease already released (or expired and purged) is never brought back.
-- KEYS: concurrency buckets; ARGV[1]: lease TTL (ms); ARGV[1 + i]: the lease held in KEYS[i].
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local ttl = tonumber(ARGV[1])
local renewed = 0
for i = 1, #KEYS do
  renewed = renewed + redis.call('ZADD', KEYS[i], 'XX', 'CH', now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return renewed
