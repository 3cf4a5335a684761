// Registry operations as Lua scripts, so each is atomic and uses the Redis server's clock for
// expiry (hosts' clocks may disagree). All registry keys share the `{registry}` hash tag, so the
// scripts also run on Redis Cluster (one slot; the registry is small).
//
// Layout under PREFIX{registry}:
//   services      SET   service names
//   i:<service>   ZSET  instance id → expiry (ms, server time)
//   d:<service>   HASH  instance id → instance JSON
// Events on PREFIX{registry}:events: "up <json>" or "down <service> <id>".

const NOW = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** KEYS: services, i:<svc>, d:<svc>. ARGV: service, id, json, ttlMs, channel. */
export const REGISTER = `
${NOW}
local prev = redis.call('HGET', KEYS[3], ARGV[2])
local exp = redis.call('ZSCORE', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
if prev ~= ARGV[3] or not exp or tonumber(exp) <= now then
  redis.call('PUBLISH', ARGV[5], 'up ' .. ARGV[3])
end
return 1`;

/** KEYS: i:<svc>, d:<svc>. ARGV: service, id, channel. */
export const DEREGISTER = `
local n = redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
if n > 0 then redis.call('PUBLISH', ARGV[3], 'down ' .. ARGV[1] .. ' ' .. ARGV[2]) end
return n`;

/** KEYS: services. ARGV: key prefix (ending in "{registry}:"), channel. Returns instance JSONs. */
export const SNAPSHOT = `
${NOW}
local out = {}
for _, svc in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local z = ARGV[1] .. 'i:' .. svc
  local h = ARGV[1] .. 'd:' .. svc
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, id in ipairs(expired) do
    redis.call('HDEL', h, id)
    redis.call('PUBLISH', ARGV[2], 'down ' .. svc .. ' ' .. id)
  end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
  local live = redis.call('ZRANGEBYSCORE', z, '(' .. now, '+inf')
  if #live == 0 then
    redis.call('SREM', KEYS[1], svc)
  else
    for i = 1, #live, 500 do
      local vals = redis.call('HMGET', h, unpack(live, i, math.min(i + 499, #live)))
      for _, v in ipairs(vals) do if v then out[#out + 1] = v end end
    end
  end
end
return out`;
