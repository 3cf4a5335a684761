import type { Instance, Registry, RegistryEvent } from '../types.ts';
import { isInstance } from '../types.ts';
import type { RedisClient } from './connect.ts';
import { DEREGISTER, REGISTER, SNAPSHOT } from './registry-scripts.ts';

interface ScriptedClient {
  mgRegister(k1: string, k2: string, k3: string, service: string, id: string, json: string, ttl: number, channel: string): Promise<number>;
  mgDeregister(k1: string, k2: string, service: string, id: string, channel: string): Promise<number>;
  mgSnapshot(k1: string, prefix: string, channel: string): Promise<string[]>;
}

export class RedisRegistry implements Registry {
  readonly #client: RedisClient & ScriptedClient;
  readonly #base: string;
  readonly channel: string;
  readonly #listeners = new Set<(event: RegistryEvent) => void>();

  /** The store subscribes `subscriber` to `channel` (and re-subscribes after every reconnect). */
  constructor(client: RedisClient, subscriber: RedisClient, keyPrefix: string) {
    client.defineCommand('mgRegister', { numberOfKeys: 3, lua: REGISTER });
    client.defineCommand('mgDeregister', { numberOfKeys: 2, lua: DEREGISTER });
    client.defineCommand('mgSnapshot', { numberOfKeys: 1, lua: SNAPSHOT });
    this.#client = client as RedisClient & ScriptedClient;
    this.#base = `${keyPrefix}{registry}:`;
    this.channel = `${this.#base}events`;
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.#dispatch(message);
    });
  }

  async register(instance: Instance, ttlMs: number): Promise<void> {
    const b = this.#base;
    await this.#client.mgRegister(
      `${b}services`, `${b}i:${instance.service}`, `${b}d:${instance.service}`,
      instance.service, instance.id, JSON.stringify(instance), ttlMs, this.channel,
    );
  }

  async deregister(service: string, id: string): Promise<void> {
    const b = this.#base;
    await this.#client.mgDeregister(`${b}i:${service}`, `${b}d:${service}`, service, id, this.channel);
  }

  async snapshot(): Promise<Instance[]> {
    const rows = await this.#client.mgSnapshot(`${this.#base}services`, this.#base, this.channel);
    const out: Instance[] = [];
    for (const row of rows) {
      const inst = parseInstance(row);
      if (inst) out.push(inst);
    }
    return out;
  }

  watch(listener: (event: RegistryEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #dispatch(message: string): void {
    let event: RegistryEvent | undefined;
    if (message.startsWith('up ')) {
      const instance = parseInstance(message.slice(3));
      if (instance) event = { kind: 'up', instance };
    } else if (message.startsWith('down ')) {
      const [, service, id] = message.split(' ');
      if (service && id) event = { kind: 'down', service, id };
    }
    if (!event) return; // another writer's malformed event must not hurt this proxy
    for (const l of this.#listeners) l(event);
  }
}

function parseInstance(json: string): Instance | undefined {
  try {
    const v: unknown = JSON.parse(json);
    return isInstance(v) ? v : undefined;
  } catch {
    return undefined;
  }
}
