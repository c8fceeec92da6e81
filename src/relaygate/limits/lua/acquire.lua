-- Admit one request over all of its buckets, all or nothing, in one atomic step.
-- KEYS: one per bucket, then the buckets counted behind others and the lowest-capacity records.
-- ARGV[1]: lease id; ARGV[2]: lease TTL (ms); then 8 values per bucket: kind ('r' rate |
-- 'c' concurrency), rate (tokens/s), capacity, cost, queueable ('1' | '0'), and for a
-- concurrency bucket the index in KEYS of a bucket whose live leases count as held in it too
-- (claims that come first) or 0, the index in KEYS of the bucket's lowest-capacity record
-- (a hash: capacity 'c', binding until 'u') or 0, and how long (ms) the capacity asked binds.
-- Returns {admitted, retry_after_us, first_refused_index, all_refusals_queueable}.
-- Time comes from the server, so the clocks of the gateway processes never matter.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local lease, ttl = ARGV[1], tonumber(ARGV[2])
local tokens = {}
local retry, refused, queueable = 0, 0, 1
local buckets = (#ARGV - 2) / 8

for i = 1, buckets do
  local a = 2 + (i - 1) * 8
  local kind, rate, cap = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local cost = math.min(tonumber(ARGV[a + 4]), cap)
  local wait = -1
  if kind == 'r' then
    local v = redis.call('HMGET', KEYS[i], 't', 'u')
    local have, updated = tonumber(v[1]), tonumber(v[2])
    if have == nil then
      have = cap
    else
      have = math.min(cap, have + math.max(0, now - updated) * rate / 1000)
    end
    tokens[i] = have
    if have < cost then
      if rate > 0 then wait = (cost - have) * 1000 / rate else wait = 3600000 end
    end
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    local held = redis.call('ZCARD', KEYS[i])
    local behind = tonumber(ARGV[a + 6])
    if behind > 0 then
      redis.call('ZREMRANGEBYSCORE', KEYS[behind], '-inf', now)
      held = held + redis.call('ZCARD', KEYS[behind])
    end
    local lowest = tonumber(ARGV[a + 7])
    if lowest > 0 then
      -- The lowest capacity asked lately binds every asker; this ask's binds unless a lower one
      -- still does (recorded whether admitted or not).
      local v = redis.call('HMGET', KEYS[lowest], 'c', 'u')
      local low, untl = tonumber(v[1]), tonumber(v[2])
      if low == nil or untl < now or cap <= low then
        local keep = tonumber(ARGV[a + 8])
        redis.call('HSET', KEYS[lowest], 'c', cap, 'u', now + keep)
        redis.call('PEXPIRE', KEYS[lowest], math.ceil(keep) + 1000)
      else
        cap = low
      end
    end
    if held + 1 > cap then wait = 1000 end
  end
  if wait >= 0 then
    if wait > retry then retry = wait end
    if refused == 0 then refused = i end
    if ARGV[a + 5] ~= '1' then queueable = 0 end
  end
end

if refused > 0 then
  return {0, math.ceil(retry * 1000), refused, queueable}
end

for i = 1, buckets do
  local a = 2 + (i - 1) * 8
  local rate, cap = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if ARGV[a + 1] == 'r' then
    local cost = math.min(tonumber(ARGV[a + 4]), cap)
    redis.call('HSET', KEYS[i], 't', tokens[i] - cost, 'u', now)
    redis.call('PEXPIRE', KEYS[i], math.ceil(2000 * cap / rate) + 1000)
  else
    redis.call('ZADD', KEYS[i], now + ttl, lease)
    redis.call('PEXPIRE', KEYS[i], ttl * 2)
  end
end
return {1, 0, 0, 1}
