// A sidecar's own entry in the registry: registered at start, renewed by heartbeat well inside its
// TTL, re-registered as soon as the store comes back (it may have restarted empty), and removed on
// graceful shutdown. If heartbeats stop, the TTL removes it.
import type { Logger } from '../observe/log.ts';
import type { Instance, Store } from '../store/types.ts';

export interface RegistrationOptions {
  store: Store;
  instance: Instance;
  ttlMs: number;
  heartbeatMs: number;
  log: Logger;
}

export class Registration {
  readonly #o: RegistrationOptions;
  #timer: NodeJS.Timeout | undefined;
  #active = false;
  #failing = false;

  constructor(opts: RegistrationOptions) {
    this.#o = opts;
  }

  get instance(): Instance {
    return this.#o.instance;
  }

  async start(): Promise<void> {
    this.#active = true;
    this.#o.store.onStatus((s) => {
      if (s === 'up' && this.#active) void this.#beat();
    });
    await this.#beat();
    this.#timer = setInterval(() => void this.#beat(), this.#o.heartbeatMs);
    this.#timer.unref();
  }

  /** Deregisters; bounded so a dead store cannot hold up shutdown. */
  async stop(timeoutMs = 1000): Promise<void> {
    if (!this.#active) return;
    this.#active = false;
    clearInterval(this.#timer);
    const { service, id } = this.#o.instance;
    await Promise.race([
      this.#o.store.registry.deregister(service, id).catch((err: Error) => this.#o.log.warn({ err: err.message }, 'deregistration failed; the TTL will remove this instance')),
      new Promise((r) => setTimeout(r, timeoutMs).unref()),
    ]);
  }

  async #beat(): Promise<void> {
    try {
      await this.#o.store.registry.register(this.#o.instance, this.#o.ttlMs);
      if (this.#failing) this.#o.log.info({ instance: this.#o.instance.id }, 'registration renewed');
      this.#failing = false;
    } catch (err) {
      if (!this.#failing) this.#o.log.warn({ err: (err as Error).message, instance: this.#o.instance.id }, 'registration heartbeat failed; retrying');
      this.#failing = true;
    }
  }
}
