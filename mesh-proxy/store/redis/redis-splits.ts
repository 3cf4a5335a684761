// Traffic splits in Redis: one hash (service → JSON), a version counter hash, and an event channel.
// A write is one script: the version check, the bump, the write and the publish happen atomically.
import { SplitError, type SplitSpec, type TrafficSplit } from '../../traffic/split.ts';
import type { SplitEvent, SplitStore } from '../types.ts';
import type { RedisClient } from './connect.ts';

/**
 * KEYS: splits hash, versions hash. ARGV: service, expectVersion (-1: any), the split's JSON with
 * "version":-1 where the new version goes, channel. The JSON is patched, not re-encoded: cjson
 * would reorder the weights.
 */
const PUT = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
local currentVersion = 0
if current then currentVersion = cjson.decode(current).version end
if tonumber(ARGV[2]) >= 0 and tonumber(ARGV[2]) ~= currentVersion then return {0, tostring(currentVersion)} end
local version = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local json = string.gsub(ARGV[3], '"version":%-1', '"version":' .. version, 1)
redis.call('HSET', KEYS[1], ARGV[1], json)
redis.call('PUBLISH', ARGV[4], 'put ' .. json)
return {1, json}`;

interface Scripted {
  mgSplitPut(splits: string, versions: string, service: string, expect: number, json: string, channel: string): Promise<[number, string]>;
}

export class RedisSplits implements SplitStore {
  readonly #client: RedisClient & Scripted;
  readonly #key: string;
  readonly #versions: string;
  readonly channel: string;
  readonly #listeners = new Set<(e: SplitEvent) => void>();

  constructor(client: RedisClient, subscriber: RedisClient, keyPrefix: string) {
    client.defineCommand('mgSplitPut', { numberOfKeys: 2, lua: PUT });
    this.#client = client as RedisClient & Scripted;
    this.#key = `${keyPrefix}{splits}:all`;
    this.#versions = `${keyPrefix}{splits}:versions`;
    this.channel = `${keyPrefix}{splits}:events`;
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.#dispatch(message);
    });
  }

  async list(): Promise<TrafficSplit[]> {
    const all = await this.#client.hgetall(this.#key);
    const out: TrafficSplit[] = [];
    for (const json of Object.values(all)) {
      const s = parseStored(json);
      if (s !== undefined) out.push(s);
    }
    return out;
  }

  async put(service: string, spec: SplitSpec, expectVersion?: number): Promise<TrafficSplit> {
    const json = JSON.stringify({ service, version: -1, updatedAt: new Date().toISOString(), subsetKey: spec.subsetKey, weights: spec.weights, match: spec.match, ...(spec.mirror ? { mirror: spec.mirror } : {}) });
    const [ok, value] = await this.#client.mgSplitPut(this.#key, this.#versions, service, expectVersion ?? -1, json, this.channel);
    if (ok !== 1) throw new SplitError('SPLIT_CONFLICT', `the split of "${service}" is at version ${value}, not ${expectVersion}`);
    return parseStored(value)!;
  }

  async delete(service: string): Promise<boolean> {
    const [[, removed]] = (await this.#client.multi().hdel(this.#key, service).publish(this.channel, `delete ${service}`).exec()) as [[unknown, number]];
    return removed === 1;
  }

  watch(listener: (e: SplitEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #dispatch(message: string): void {
    let ev: SplitEvent | undefined;
    if (message.startsWith('put ')) {
      const split = parseStored(message.slice(4));
      if (split) ev = { kind: 'put', split };
    } else if (message.startsWith('delete ')) ev = { kind: 'delete', service: message.slice(7) };
    if (ev === undefined) return;
    for (const l of this.#listeners) l(ev);
  }
}

function parseStored(json: string): TrafficSplit | undefined {
  try {
    const o = JSON.parse(json) as TrafficSplit & { match?: unknown };
    if (typeof o.service !== 'string' || typeof o.version !== 'number' || typeof o.weights !== 'object') return undefined;
    return Object.freeze({ ...o, match: Array.isArray(o.match) ? o.match : [] }) as TrafficSplit;
  } catch {
    return undefined;
  }
}
