// Global rate-limit counters in Redis: one Lua script per check, on Redis server time, mirroring
// store/gcra.ts line for line. Each limited key is one hash (window → theoretical arrival
// time in ms) that expires once every window has replenished, so idle keys cost nothing.
import type { RateLimitDecision, RateLimitStore, RateLimitWindow } from '../types.ts';
import type { RedisClient } from './connect.ts';

/**
 * KEYS: the key's hash. ARGV: cost, then max, periodMs per window. Returns allowed, window, limit,
 * remaining, resetMs, retryAfterMs. Hash fields 2i-1 and 2i hold window i's TAT as whole ms and
 * fraction, as gcra.ts's tats array does (one float near today's epoch is too coarse: see there).
 */
const CONSUME = `
-- Redis < 5 refuses writes after TIME unless effects are replicated; later versions always do.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost = tonumber(ARGV[1])
local n = (#ARGV - 1) / 2
local fields = {}
for i = 1, 2 * n do fields[i] = tostring(i) end
local tats = redis.call('HMGET', KEYS[1], unpack(fields))
local SLACK = 1e-9
local allowed = true
local retry = 0
local report = 1
local room = math.huge
local useds = {}
for i = 1, n do
  local max = tonumber(ARGV[2 * i])
  local period = tonumber(ARGV[2 * i + 1])
  local used = (tonumber(tats[2 * i - 1]) or 0) - now + (tonumber(tats[2 * i]) or 0)
  if used < 0 then used = 0 end
  useds[i] = used
  local over = used + cost * period / max - period
  if over > period * SLACK then
    if allowed or over > retry then report = i end
    allowed = false
    if over > retry then retry = over end
  elseif allowed then
    local r = -over / period
    if r < room then room = r; report = i end
  end
end
if allowed then
  local ttl = 0
  for i = 1, n do
    local nxt = useds[i] + cost * tonumber(ARGV[2 * i + 1]) / tonumber(ARGV[2 * i])
    local whole = math.floor(nxt)
    useds[i] = nxt
    -- %.17g: tostring keeps only 14 digits.
    redis.call('HSET', KEYS[1], tostring(2 * i - 1), string.format('%.17g', now + whole), tostring(2 * i), string.format('%.17g', nxt - whole))
    if nxt > ttl then ttl = nxt end
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl) + 1000)
end
local max = tonumber(ARGV[2 * report])
local period = tonumber(ARGV[2 * report + 1])
local used = useds[report]
local remaining = math.floor((period - used) * max / period + SLACK * max)
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
