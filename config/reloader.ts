// Hot reload of a process's configuration (the gateway's routes and plugins, a sidecar's inbound
// plugins): on a file change (polled), SIGHUP or POST /reload, the file is loaded and validated
// exactly as at start, a new snapshot is built, and only then swapped in. An invalid file or plugin
// is rejected with the same detail as at start (file, path, expectation) and the running snapshot
// keeps serving. Sections that need a restart (listeners, store …) are named, not half-applied.
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { ConfigError } from './errors.ts';
import { ConfigWatcher } from './watch.ts';

export interface ReloadResult {
  readonly applied: boolean;
  readonly error?: string;
  readonly issues?: readonly { path: string; message: string }[];
  /** Sections that changed but only take effect after a restart. */
  readonly needsRestart?: readonly string[];
}

/** What a reloadable process keeps: its config and whatever it compiled from it. */
export interface Snapshot<C> {
  readonly config: C;
  /** Extra state to watch besides the file (e.g. a plugin directory's file times). */
  readonly stamp?: () => Promise<string>;
}

export interface ReloaderOptions<C, S extends Snapshot<C>> {
  readonly file: string;
  readonly log: Logger;
  readonly reloads: Counter<'result'>;
  readonly load: (file: string) => Promise<C>;
  readonly current: () => S;
  readonly build: (config: C) => Promise<S>;
  readonly swap: (next: S) => void;
  readonly watch: boolean;
  /** Top-level sections a reload cannot apply. */
  readonly restartSections: readonly (keyof C & string)[];
}

export class Reloader<C, S extends Snapshot<C>> {
  readonly #o: ReloaderOptions<C, S>;
  readonly #watcher: ConfigWatcher | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  readonly #onHup = () => void this.reload('SIGHUP');

  constructor(o: ReloaderOptions<C, S>) {
    this.#o = o;
    if (o.watch) {
      this.#watcher = new ConfigWatcher({
        file: o.file,
        intervalMs: 1000,
        extra: async () => (await o.current().stamp?.()) ?? '',
        onChange: () => this.reload('file change'),
      });
    }
  }

  async start(): Promise<void> {
    await this.#watcher?.start();
    process.on('SIGHUP', this.#onHup);
  }

  stop(): void {
    this.#watcher?.stop();
    process.off('SIGHUP', this.#onHup);
  }

  /** Reloads now; concurrent calls run one after the other. */
  reload(trigger: string): Promise<ReloadResult> {
    const run = this.#queue.then(() => this.#reload(trigger));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #reload(trigger: string): Promise<ReloadResult> {
    const log = this.#o.log;
    let next: S;
    // What the files looked like before loading them: a change made while this reload runs must
    // still differ from what the watcher records as seen, so its next poll reloads again.
    const seen = await this.#watcher?.read();
    try {
      // An empty file is a valid config with no routes, but at reload it is far more likely an
      // editor's truncate-then-write caught half way: swapping it in would answer 404 to everything.
      if ((await readFile(this.#o.file, 'utf8').catch(() => 'unreadable')).trim() === '') {
        throw new ConfigError('CONFIG_INVALID', this.#o.file, [{ path: '', message: 'the file is empty (a reload never empties the route table; restart to run with no config)' }]);
      }
      const config = await this.#o.load(this.#o.file);
      next = await this.#o.build(config);
    } catch (err) {
      this.#o.reloads.inc({ result: 'rejected' });
      const issues = err instanceof ConfigError ? err.issues : undefined;
      const message = (err as Error).message ?? String(err);
      log.error({ trigger, error: message }, 'configuration reload rejected; the running configuration keeps serving');
      if (seen !== undefined) this.#watcher?.mark(seen);
      return { applied: false, error: message, issues };
    }
    const prev = this.#o.current();
    const needsRestart = this.#o.restartSections.filter((k) => JSON.stringify(prev.config[k]) !== JSON.stringify(next.config[k]));
    this.#o.swap(next);
    this.#o.reloads.inc({ result: 'applied' });
    if (seen !== undefined) this.#watcher?.mark(seen);
    log.info({ trigger }, 'configuration reloaded');
    if (needsRestart.length > 0) log.warn({ sections: needsRestart }, 'these sections changed but take effect only after a restart');
    return { applied: true, needsRestart };
  }
}
