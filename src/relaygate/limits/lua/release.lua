-- Give back a lease and true up rate buckets in one step.
-- KEYS: the lease's concurrency buckets, then the rate buckets to settle.
-- ARGV[1]: lease id; ARGV[2]: how many KEYS are concurrency buckets; then 3 values per rate
-- bucket: rate (tokens/s), capacity, refund (negative takes more; the bucket stays within
-- [-capacity, capacity]).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local lease, held = ARGV[1], tonumber(ARGV[2])

for i = 1, held do
  redis.call('ZREM', KEYS[i], lease)
end

for i = held + 1, #KEYS do
  local a = 3 + (i - held - 1) * 3
  local rate, cap, refund = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local v = redis.call('HMGET', KEYS[i], 't', 'u')
  local have, updated = tonumber(v[1]), tonumber(v[2])
  if have == nil then
    have = cap
  else
    have = math.min(cap, have + math.max(0, now - updated) * rate / 1000)
  end
  have = math.max(-cap, math.min(cap, have + refund))
  redis.call('HSET', KEYS[i], 't', have, 'u', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil(2000 * cap / rate) + 1000)
end
return held
