// The local view of the registry that every proxy routes from. Change events keep it fresh within
// milliseconds; a periodic resync repairs anything an event missed; the request path only reads
// memory. When the store is unreachable the view freezes at the last known endpoints (and is kept on
// disk), rather than emptying: serving a slightly stale set beats serving nothing (cf. Linkerd's
// idle-cache eviction failures, linkerd/linkerd2#10200).
import type { Logger } from '../observe/log.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { Instance, RegistryEvent, Store } from '../store/types.ts';
import { Endpoint, sameInstance, type ServiceEndpoints } from './endpoint.ts';
import { readSnapshot, writeSnapshot } from './snapshot-file.ts';

export interface EndpointCacheOptions {
  store: Store;
  resyncMs: number;
  snapshotFile: string;
  log: Logger;
  metrics: Metrics;
  /** How long start() waits for the store before falling back to the disk snapshot. */
  startTimeoutMs: number;
  /**
   * After the store comes back, endpoints missing from its snapshots are kept this long: a Redis
   * that restarted empty refills only as instances re-register (within a heartbeat). Explicit
   * deregistrations still apply at once.
   */
  reconnectGraceMs: number;
}

class MutableService implements ServiceEndpoints {
  readonly service: string;
  endpoints: readonly Endpoint[] = [];
  readonly byId = new Map<string, Endpoint>();

  constructor(service: string) {
    this.service = service;
  }

  rebuild(): void {
    this.endpoints = Object.freeze([...this.byId.values()]);
  }
}

export class EndpointCache {
  readonly #opts: EndpointCacheOptions;
  readonly #services = new Map<string, MutableService>();
  readonly #changeListeners = new Set<(service: string) => void>();
  #lastSyncAt = 0;
  #source: 'none' | 'store' | 'disk' = 'none';
  #inflight: Promise<boolean> | undefined;
  #pending: RegistryEvent[] = [];
  #timer: NodeJS.Timeout | undefined;
  #unwatch: (() => void) | undefined;
  #saveTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Until then a resync adds and updates endpoints but removes none (see reconnectGraceMs). */
  #pruneAfter = 0;

  constructor(opts: EndpointCacheOptions) {
    this.#opts = opts;
    const m = opts.metrics;
    m.gauge('meshgate_discovery_staleness_seconds', 'Seconds since this proxy last synced its endpoints with the store in full (+Inf before the first sync).', (g) =>
      g.set(this.#lastSyncAt === 0 ? Infinity : (Date.now() - this.#lastSyncAt) / 1000),
    );
    m.gauge('meshgate_discovery_endpoints', 'Endpoints known per service and datacenter.', (g) => {
      g.reset();
      for (const s of this.#services.values()) {
        const perDc = new Map<string, number>();
        for (const e of s.endpoints) perDc.set(e.instance.dc, (perDc.get(e.instance.dc) ?? 0) + 1);
        for (const [dc, n] of perDc) g.set({ service: s.service, dc }, n);
      }
    }, ['service', 'dc']);
    m.gauge('meshgate_store_up', '1 when the store is reachable, 0 when not.', (g) => g.set(opts.store.status === 'up' ? 1 : 0));
  }

  /** Hot path: a map lookup. */
  get(service: string): ServiceEndpoints | undefined {
    return this.#services.get(service);
  }

  services(): IterableIterator<ServiceEndpoints> {
    return this.#services.values();
  }

  get lastSyncAt(): number {
    return this.#lastSyncAt;
  }

  get source(): 'none' | 'store' | 'disk' {
    return this.#source;
  }

  onChange(listener: (service: string) => void): void {
    this.#changeListeners.add(listener);
  }

  async start(): Promise<void> {
    const { store } = this.#opts;
    this.#unwatch = store.registry.watch((ev) => this.#onEvent(ev));
    store.onStatus((s) => {
      if (s !== 'up') return;
      if (this.#source !== 'none') this.#pruneAfter = Date.now() + this.#opts.reconnectGraceMs;
      void this.resync();
    });
    const connected = await store.ready(this.#opts.startTimeoutMs);
    const synced = connected && (await this.resync());
    if (!synced) await this.#loadFromDisk();
    this.#timer = setInterval(() => void this.resync(), this.#opts.resyncMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#saveTimer);
    this.#unwatch?.();
  }

  /**
   * Replaces the view with the store's; resolves false (view unchanged) when the store is away.
   * Callers during a resync share it (the store's "up" event and start() both ask for one).
   */
  resync(): Promise<boolean> {
    if (this.#stopped) return Promise.resolve(false);
    this.#inflight ??= this.#resync().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #resync(): Promise<boolean> {
    let instances: Instance[];
    try {
      instances = await this.#opts.store.registry.snapshot();
    } catch (err) {
      this.#opts.log.debug({ err: (err as Error).message }, 'discovery resync failed; keeping last known endpoints');
      this.#pending = [];
      return false;
    }
    if (this.#stopped) return false;
    this.#replaceAll(instances, Date.now() >= this.#pruneAfter);
    // Events and the snapshot travel on different connections: replay what arrived meanwhile so
    // the older snapshot cannot undo a newer event.
    const pending = this.#pending;
    this.#pending = [];
    for (const ev of pending) this.#apply(ev);
    this.#lastSyncAt = Date.now();
    this.#source = 'store';
    this.#scheduleSave();
    return true;
  }

  #onEvent(ev: RegistryEvent): void {
    if (this.#inflight !== undefined) this.#pending.push(ev);
    this.#apply(ev);
    this.#scheduleSave();
  }

  #apply(ev: RegistryEvent): void {
    if (ev.kind === 'up') {
      const svc = this.#service(ev.instance.service);
      const prev = svc.byId.get(ev.instance.id);
      if (prev && sameInstance(prev.instance, ev.instance)) return;
      svc.byId.set(ev.instance.id, new Endpoint(ev.instance));
      this.#changed(svc);
    } else {
      const svc = this.#services.get(ev.service);
      if (svc?.byId.delete(ev.id)) this.#changed(svc);
    }
  }

  #replaceAll(instances: Instance[], prune = true): void {
    const seen = new Map<string, Set<string>>();
    const dirty = new Set<MutableService>();
    for (const inst of instances) {
      const svc = this.#service(inst.service);
      let ids = seen.get(inst.service);
      if (!ids) seen.set(inst.service, (ids = new Set()));
      ids.add(inst.id);
      const prev = svc.byId.get(inst.id);
      if (!prev || !sameInstance(prev.instance, inst)) {
        svc.byId.set(inst.id, new Endpoint(inst));
        dirty.add(svc);
      }
    }
    for (const svc of prune ? this.#services.values() : []) {
      const ids = seen.get(svc.service);
      for (const id of svc.byId.keys()) {
        if (!ids?.has(id)) {
          svc.byId.delete(id);
          dirty.add(svc);
        }
      }
    }
    for (const svc of dirty) this.#changed(svc);
  }

  #service(name: string): MutableService {
    let s = this.#services.get(name);
    if (!s) this.#services.set(name, (s = new MutableService(name)));
    return s;
  }

  #changed(svc: MutableService): void {
    svc.rebuild();
    this.#notify(svc.service);
  }

  #notify(service: string): void {
    for (const l of this.#changeListeners) l(service);
  }

  async #loadFromDisk(): Promise<void> {
    const snap = await readSnapshot(this.#opts.snapshotFile);
    if (!snap) {
      this.#opts.log.warn({ file: this.#opts.snapshotFile }, 'store unreachable and no endpoint snapshot on disk; starting with no endpoints');
      return;
    }
    this.#replaceAll(snap.instances);
    this.#lastSyncAt = snap.savedAt;
    this.#source = 'disk';
    this.#opts.log.warn(
      { file: this.#opts.snapshotFile, instances: snap.instances.length, ageSeconds: Math.round((Date.now() - snap.savedAt) / 1000) },
      'store unreachable; routing from the endpoint snapshot on disk',
    );
  }

  #scheduleSave(): void {
    if (this.#saveTimer || this.#stopped) return;
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = undefined;
      const instances: Instance[] = [];
      for (const s of this.#services.values()) for (const e of s.endpoints) instances.push(e.instance);
      writeSnapshot(this.#opts.snapshotFile, { savedAt: this.#lastSyncAt || Date.now(), instances }).catch((err: Error) =>
        this.#opts.log.warn({ err: err.message, file: this.#opts.snapshotFile }, 'could not write the endpoint snapshot'),
      );
    }, 1000);
    this.#saveTimer.unref();
  }
}
