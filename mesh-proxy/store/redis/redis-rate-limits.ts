// Global rate-limit counters in Redis: one Lua script per batch of checks, on Redis server time, mirroring
// store/gcra.ts line for line. Each limited key is one hash (window → theoretical arrival
// time in ms) that expires once every window has replenished, so idle keys cost nothing.
import type { RateLimitDecision, RateLimitStore, RateLimitWindow } from '../types.ts';
import type { RedisClient } from './connect.ts';

/**
 * One call checks a batch: KEYS are the keys' hashes; ARGV holds, per key in order, its units (the
 * cost, or the most wanted), 1 to grant fewer when fewer fit (else 0: all or nothing), units given
 * back first, its window count n, then max, periodMs per window. Returns seven numbers per key:
 * allowed, granted, window, limit, remaining, resetMs, retryAfterMs. Hash fields 2i-1 and 2i hold
 * window i's TAT as whole ms and fraction, as gcra.ts's tats array does (one float near today's
 * epoch is too coarse: see there). Keys are checked in order, so a key twice in one batch sees its
 * first check's effect. The arithmetic is gcra.ts's (gcra, gcraUpTo), operation for operation.
 */
const CONSUME = `
-- Redis < 5 refuses writes after TIME unless effects are replicated; later versions always do.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local SLACK = 1e-9
local out = {}
local a = 1
for k = 1, #KEYS do
  local cost = tonumber(ARGV[a])
  local upTo = ARGV[a + 1] == '1'
  local returned = tonumber(ARGV[a + 2])
  local n = tonumber(ARGV[a + 3])
  local maxs = {}
  local periods = {}
  for i = 1, n do
    maxs[i] = tonumber(ARGV[a + 2 + 2 * i])
    periods[i] = tonumber(ARGV[a + 3 + 2 * i])
  end
  local fields = {}
  for i = 1, 2 * n do fields[i] = tostring(i) end
  local tats = redis.call('HMGET', KEYS[k], unpack(fields))
  local useds = {}
  for i = 1, n do
    local used = (tonumber(tats[2 * i - 1]) or 0) - now + (tonumber(tats[2 * i]) or 0)
    if used < 0 then used = 0 end
    useds[i] = used
  end
  if returned > 0 then
    for i = 1, n do
      local nxt = useds[i] - returned * periods[i] / maxs[i]
      if nxt < 0 then nxt = 0 end
      local whole = math.floor(nxt)
      -- As gcra.ts reads it back: (now + whole) - now + fraction.
      useds[i] = whole + (nxt - whole)
      redis.call('HSET', KEYS[k], tostring(2 * i - 1), string.format('%.17g', now + whole), tostring(2 * i), string.format('%.17g', nxt - whole))
    end
  end
  if upTo then
    local room = cost
    for i = 1, n do
      if room <= 0 then break end
      local r = math.floor((periods[i] - useds[i]) * maxs[i] / periods[i] + SLACK * maxs[i])
      if r < room then room = r end
    end
    if room > 0 then cost = room else cost = 1 end
  end
  local allowed = true
  local retry = 0
  local report = 1
  local roomest = math.huge
  for i = 1, n do
    local over = useds[i] + cost * periods[i] / maxs[i] - periods[i]
    if over > periods[i] * SLACK then
      if allowed or over > retry then report = i end
      allowed = false
      if over > retry then retry = over end
    elseif allowed then
      local r = -over / periods[i]
      if r < roomest then roomest = r; report = i end
    end
  end
  local used = useds[report]
  if allowed then
    local ttl = 0
    for i = 1, n do
      local nxt = useds[i] + cost * periods[i] / maxs[i]
      local whole = math.floor(nxt)
      if i == report then used = nxt end
      -- %.17g: tostring keeps only 14 digits.
      redis.call('HSET', KEYS[k], tostring(2 * i - 1), string.format('%.17g', now + whole), tostring(2 * i), string.format('%.17g', nxt - whole))
      if nxt > ttl then ttl = nxt end
    end
    redis.call('PEXPIRE', KEYS[k], math.ceil(ttl) + 1000)
  end
  local max = maxs[report]
  local period = periods[report]
  local remaining = math.floor((period - used) * max / period + SLACK * max)
  if remaining < 0 then remaining = 0 end
  local o = #out
  out[o + 1] = allowed and 1 or 0
  out[o + 2] = allowed and cost or 0
  out[o + 3] = report - 1
  out[o + 4] = max
  out[o + 5] = remaining
  out[o + 6] = math.ceil(used)
  out[o + 7] = math.ceil(retry)
  a = a + 4 + 2 * n
end
return out`;

/** Checks per script call: bounds one call's Redis time (each check is a few hash operations). */
const MAX_BATCH = 128;

interface Scripted {
  mgRateLimit(numKeys: number, ...keysThenArgs: Array<string | number>): Promise<number[]>;
}

interface Pending {
  readonly key: string;
  readonly windows: readonly RateLimitWindow[];
  readonly units: number;
  /** 1: up to `units`; 0: all or nothing. */
  readonly upTo: 0 | 1;
  readonly returned: number;
  resolve(d: RateLimitDecision): void;
  reject(err: unknown): void;
}

/**
 * Checks made in one turn of the event loop go to Redis as one script call: one command to encode
 * and write, one reply to read, instead of one round trip per request (measured: a Redis round trip
 * per request cost the edge more than every plugin together). A lone check waits at most for the
 * current turn to end. With Redis Cluster the keys of a batch may live on different nodes, so each
 * check is its own call there.
 */
export class RedisRateLimits implements RateLimitStore {
  readonly remote = true;
  readonly #client: RedisClient & Scripted;
  readonly #prefix: string;
  readonly #batch: boolean;
  #queue: Pending[] = [];
  readonly #flushBound = () => this.#flush();

  constructor(client: RedisClient, keyPrefix: string) {
    client.defineCommand('mgRateLimit', { lua: CONSUME });
    this.#client = client as RedisClient & Scripted;
    this.#prefix = `${keyPrefix}rl:`;
    this.#batch = !(client as { isCluster?: boolean }).isCluster;
  }

  consume(key: string, windows: readonly RateLimitWindow[], cost: number): Promise<RateLimitDecision> {
    return this.#enqueue(key, windows, cost, 0, 0);
  }

  consumeUpTo(key: string, windows: readonly RateLimitWindow[], want: number, returned: number): Promise<RateLimitDecision> {
    return this.#enqueue(key, windows, want, 1, returned);
  }

  #enqueue(key: string, windows: readonly RateLimitWindow[], units: number, upTo: 0 | 1, returned: number): Promise<RateLimitDecision> {
    return new Promise((resolve, reject) => {
      if (this.#queue.length === 0) setImmediate(this.#flushBound);
      this.#queue.push({ key: this.#prefix + key, windows, units, upTo, returned, resolve, reject });
    });
  }

  #flush(): void {
    const queue = this.#queue;
    this.#queue = [];
    const size = this.#batch ? MAX_BATCH : 1;
    for (let i = 0; i < queue.length; i += size) this.#send(queue.slice(i, i + size));
  }

  #send(batch: Pending[]): void {
    const keysThenArgs: Array<string | number> = batch.map((p) => p.key);
    for (const p of batch) {
      keysThenArgs.push(p.units, p.upTo, p.returned, p.windows.length);
      for (const w of p.windows) keysThenArgs.push(w.max, w.periodMs);
    }
    this.#client.mgRateLimit(batch.length, ...keysThenArgs).then(
      (r) => {
        for (let i = 0; i < batch.length; i++) {
          const o = i * 7;
          batch[i].resolve({ allowed: r[o] === 1, granted: r[o + 1], window: r[o + 2], limit: r[o + 3], remaining: r[o + 4], resetMs: r[o + 5], retryAfterMs: r[o + 6] });
        }
      },
      (err: unknown) => {
        for (const p of batch) p.reject(err);
      },
    );
  }
}
