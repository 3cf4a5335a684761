import { EventEmitter } from 'node:events';
import type { BreakerBoard, BreakerEvent, OpenBreaker } from '../types.ts';

/** The embedded breaker board: shared by the proxies of one process. */
export class MemoryBreakerBoard implements BreakerBoard {
  readonly #open = new Map<string, { service: string; id: string; until: number }>();
  readonly #events = new EventEmitter();

  constructor() {
    this.#events.setMaxListeners(0);
  }

  async publishOpen(service: string, id: string, durationMs: number, origin: string): Promise<void> {
    this.#open.set(`${service}\u0000${id}`, { service, id, until: Date.now() + durationMs });
    this.#emit({ kind: 'open', service, id, remainingMs: durationMs, origin });
  }

  async publishClose(service: string, id: string, origin: string): Promise<void> {
    this.#open.delete(`${service}\u0000${id}`);
    this.#emit({ kind: 'close', service, id, origin });
  }

  async listOpen(): Promise<OpenBreaker[]> {
    const now = Date.now();
    const out: OpenBreaker[] = [];
    for (const [k, v] of this.#open) {
      if (v.until <= now) this.#open.delete(k);
      else out.push({ service: v.service, id: v.id, remainingMs: v.until - now });
    }
    return out;
  }

  watch(listener: (event: BreakerEvent) => void): () => void {
    this.#events.on('event', listener);
    return () => this.#events.off('event', listener);
  }

  #emit(ev: BreakerEvent): void {
    queueMicrotask(() => this.#events.emit('event', ev));
  }
}
