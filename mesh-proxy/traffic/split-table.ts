// This process's copy of the traffic splits: loaded from the store at start, kept current by the
// store's change events, and reloaded on every resync and after a store outage (events may have
// been missed). The request path reads a Map; the store is never asked per request. While the
// store is down the last known splits stay in force.
import type { Logger } from '../observe/log.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { SplitEvent, Store } from '../store/types.ts';
import { CompiledSplit } from './split-picker.ts';
import { describeSplit, type TrafficSplit } from './split.ts';

export class SplitTable {
  readonly #compiled = new Map<string, CompiledSplit>();
  /** The version a removed split had: a late event of that version or older must not bring it back. */
  readonly #removedAt = new Map<string, number>();
  readonly #store: Store;
  readonly #log: Logger;
  readonly #resyncMs: number;
  #timer: NodeJS.Timeout | undefined;
  #unwatch: (() => void) | undefined;

  constructor(store: Store, resyncMs: number, log: Logger, metrics: Metrics) {
    this.#store = store;
    this.#resyncMs = resyncMs;
    this.#log = log;
    metrics.gauge(
      'meshgate_split_version',
      "The version of each service's traffic split this proxy applies.",
      (g) => {
        g.reset();
        for (const c of this.#compiled.values()) g.set({ service: c.split.service }, c.split.version);
      },
      ['service'],
    );
  }

  get(service: string): CompiledSplit | undefined {
    return this.#compiled.get(service);
  }

  list(): TrafficSplit[] {
    return [...this.#compiled.values()].map((c) => c.split);
  }

  async start(): Promise<void> {
    this.#unwatch = this.#store.splits.watch((e) => this.#apply(e));
    this.#store.onStatus((s) => {
      if (s === 'up') void this.reload();
    });
    await this.reload();
    this.#timer = setInterval(() => void this.reload(), this.#resyncMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#unwatch?.();
  }

  /** Replaces the table with the store's splits (keeps it as is when the store cannot answer). */
  async reload(): Promise<void> {
    let all: TrafficSplit[];
    try {
      all = await this.#store.splits.list();
    } catch (err) {
      this.#log.debug({ err: (err as Error).message }, 'could not read traffic splits; keeping the last known ones');
      return;
    }
    const seen = new Set<string>();
    for (const s of all) {
      seen.add(s.service);
      this.#set(s);
    }
    for (const service of [...this.#compiled.keys()]) if (!seen.has(service)) this.#remove(service);
  }

  #apply(e: SplitEvent): void {
    if (e.kind === 'put') this.#set(e.split);
    else this.#remove(e.service);
  }

  #remove(service: string): void {
    const current = this.#compiled.get(service);
    if (current === undefined) return;
    this.#removedAt.set(service, current.split.version);
    this.#compiled.delete(service);
    this.#log.info({ service }, 'traffic split removed');
  }

  #set(s: TrafficSplit): void {
    if (s.version <= (this.#removedAt.get(s.service) ?? 0)) return;
    const current = this.#compiled.get(s.service);
    // An event that arrives after a newer resync (or twice) changes nothing.
    if (current !== undefined && current.split.version >= s.version) return;
    this.#compiled.set(s.service, new CompiledSplit(s));
    this.#log.info({ service: s.service, version: s.version, split: describeSplit(s) }, 'traffic split applied');
  }
}
