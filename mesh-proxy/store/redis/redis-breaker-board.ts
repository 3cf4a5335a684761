// Open breakers in Redis: a hash of (service, instance) → expiry in Redis server time, plus events.
// Events carry the remaining duration, not a timestamp, so each proxy counts it on its own clock.
import type { BreakerBoard, BreakerEvent, OpenBreaker } from '../types.ts';
import type { RedisClient } from './connect.ts';

const NOW = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;
/** KEYS: open hash. ARGV: field, durationMs, channel, message. */
const OPEN = `${NOW}
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1`;
/** KEYS: open hash. Returns field, remainingMs pairs; drops expired ones. */
const LIST = `${NOW}
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local left = tonumber(all[i + 1]) - now
  if left > 0 then out[#out + 1] = all[i]; out[#out + 1] = tostring(left) else redis.call('HDEL', KEYS[1], all[i]) end
end
return out`;

interface Scripted {
  mgBreakerOpen(key: string, field: string, durationMs: number, channel: string, message: string): Promise<number>;
  mgBreakerList(key: string): Promise<string[]>;
}

export class RedisBreakerBoard implements BreakerBoard {
  readonly #client: RedisClient & Scripted;
  readonly #key: string;
  readonly channel: string;
  readonly #listeners = new Set<(event: BreakerEvent) => void>();

  constructor(client: RedisClient, subscriber: RedisClient, keyPrefix: string) {
    client.defineCommand('mgBreakerOpen', { numberOfKeys: 1, lua: OPEN });
    client.defineCommand('mgBreakerList', { numberOfKeys: 1, lua: LIST });
    this.#client = client as RedisClient & Scripted;
    this.#key = `${keyPrefix}{breakers}:open`;
    this.channel = `${keyPrefix}{breakers}:events`;
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.#dispatch(message);
    });
  }

  async publishOpen(service: string, id: string, durationMs: number, origin: string): Promise<void> {
    await this.#client.mgBreakerOpen(this.#key, `${service} ${id}`, durationMs, this.channel, `open ${service} ${id} ${durationMs} ${origin}`);
  }

  async publishClose(service: string, id: string, origin: string): Promise<void> {
    await this.#client.multi().hdel(this.#key, `${service} ${id}`).publish(this.channel, `close ${service} ${id} ${origin}`).exec();
  }

  async listOpen(): Promise<OpenBreaker[]> {
    const flat = await this.#client.mgBreakerList(this.#key);
    const out: OpenBreaker[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const [service, id] = flat[i].split(' ');
      const remainingMs = Number(flat[i + 1]);
      if (service && id && remainingMs > 0) out.push({ service, id, remainingMs });
    }
    return out;
  }

  watch(listener: (event: BreakerEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #dispatch(message: string): void {
    const [kind, service, id, a, b] = message.split(' ');
    let ev: BreakerEvent | undefined;
    if (kind === 'open' && service && id && b !== undefined && Number(a) > 0) ev = { kind, service, id, remainingMs: Number(a), origin: b };
    else if (kind === 'close' && service && id && a !== undefined) ev = { kind, service, id, origin: a };
    if (!ev) return;
    for (const l of this.#listeners) l(ev);
  }
}
