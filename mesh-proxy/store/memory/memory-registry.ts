// The embedded registry: one process's services, with the same TTL and event semantics as Redis.
import { EventEmitter } from 'node:events';
import type { Instance, Registry, RegistryEvent } from '../types.ts';

interface Entry {
  instance: Instance;
  expiresAt: number;
}

export class MemoryRegistry implements Registry {
  readonly #entries = new Map<string, Entry>();
  readonly #events = new EventEmitter();
  readonly #sweeper: NodeJS.Timeout;

  constructor(sweepEveryMs = 500) {
    this.#events.setMaxListeners(0);
    this.#sweeper = setInterval(() => this.#sweep(), sweepEveryMs);
    this.#sweeper.unref();
  }

  async register(instance: Instance, ttlMs: number): Promise<void> {
    const key = keyOf(instance.service, instance.id);
    const prev = this.#entries.get(key);
    this.#entries.set(key, { instance, expiresAt: Date.now() + ttlMs });
    if (!prev || JSON.stringify(prev.instance) !== JSON.stringify(instance)) {
      this.#emit({ kind: 'up', instance });
    }
  }

  async deregister(service: string, id: string): Promise<void> {
    if (this.#entries.delete(keyOf(service, id))) this.#emit({ kind: 'down', service, id });
  }

  async snapshot(): Promise<Instance[]> {
    this.#sweep();
    return [...this.#entries.values()].map((e) => e.instance);
  }

  watch(listener: (event: RegistryEvent) => void): () => void {
    this.#events.on('event', listener);
    return () => this.#events.off('event', listener);
  }

  close(): void {
    clearInterval(this.#sweeper);
  }

  #sweep(): void {
    const now = Date.now();
    for (const [key, e] of this.#entries) {
      if (e.expiresAt <= now) {
        this.#entries.delete(key);
        this.#emit({ kind: 'down', service: e.instance.service, id: e.instance.id });
      }
    }
  }

  #emit(event: RegistryEvent): void {
    // Delivered asynchronously, as a store's pub/sub would be.
    queueMicrotask(() => this.#events.emit('event', event));
  }
}

function keyOf(service: string, id: string): string {
  return `${service}\u0000${id}`;
}
