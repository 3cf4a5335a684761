// Global rate-limit counters in Redis: one Lua script per check, on Redis server time, mirroring
// store/gcra.ts line for line. Each limited key is one hash (window index → theoretical arrival
// time in ms) that expires once every window has replenished, so idle keys cost nothing.
import type { RateLimitDecision, RateLimitStore, RateLimitWindow } from '../types.ts';
import type { RedisClient } from './connect.ts';

/** KEYS: the key's hash. ARGV: cost, then max, periodMs per window. Returns allowed, window, limit, remaining, resetMs, retryAfterMs. */
const CONSUME = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost = tonumber(ARGV[1])
local n = (#ARGV - 1) / 2
local fields = {}
for i = 1, n do fields[i] = tostring(i) end
local tats = redis.call('HMGET', KEYS[1], unpack(fields))
local allowed = true
local retry = 0
local report = 1
local room = math.huge
local nexts = {}
for i = 1, n do
  local max = tonumber(ARGV[2 * i])
  local period = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(tats[i]) or 0
  if tat < now then tat = now end
  local nxt = tat + cost * period / max
  nexts[i] = nxt
  local over = nxt - now - period
  if over > 0 then
    if allowed or over > retry then report = i end
    allowed = false
    if over > retry then retry = over end
  elseif allowed then
    local r = (period - (nxt - now)) / period
    if r < room then room = r; report = i end
  end
end
local ttl = 0
if allowed then
  for i = 1, n do
    redis.call('HSET', KEYS[1], tostring(i), tostring(nexts[i]))
    if nexts[i] - now > ttl then ttl = nexts[i] - now end
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl) + 1000)
end
local max = tonumber(ARGV[2 * report])
local period = tonumber(ARGV[2 * report + 1])
local tat = tonumber(tats[report]) or 0
if allowed then tat = nexts[report] end
if tat < now then tat = now end
local used = tat - now
local remaining = math.floor((period - used) / (period / max) + 1e-9)
if remaining < 0 then remaining = 0 end
return { allowed and 1 or 0, report - 1, max, remaining, math.ceil(used), math.ceil(retry) }`;

interface Scripted {
  mgRateLimit(key: string, ...args: number[]): Promise<number[]>;
}

export class RedisRateLimits implements RateLimitStore {
  readonly #client: RedisClient & Scripted;
  readonly #prefix: string;

  constructor(client: RedisClient, keyPrefix: string) {
    client.defineCommand('mgRateLimit', { numberOfKeys: 1, lua: CONSUME });
    this.#client = client as RedisClient & Scripted;
    this.#prefix = `${keyPrefix}rl:`;
  }

  async consume(key: string, windows: readonly RateLimitWindow[], cost: number): Promise<RateLimitDecision> {
    const args: number[] = [cost];
    for (const w of windows) args.push(w.max, w.periodMs);
    const r = await this.#client.mgRateLimit(this.#prefix + key, ...args);
    return { allowed: r[0] === 1, window: r[1], limit: r[2], remaining: r[3], resetMs: r[4], retryAfterMs: r[5] };
  }
}
