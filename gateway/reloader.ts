// Hot reload of the edge's configuration: on a file change (polled), SIGHUP or POST /reload, the
// file is loaded and validated exactly as at start, a new snapshot (routes + plugin chains) is
// built, and only then swapped in. An invalid file or plugin is rejected with the same detail as at
// start (file, path, expectation) and the running snapshot keeps serving. Listener, store, node and
// service-policy changes need a restart; a reload says so rather than half-applying them.
import { readFile } from 'node:fs/promises';
import { loadGatewayConfig } from '../config/load.ts';
import { ConfigError } from '../config/errors.ts';
import { ConfigWatcher } from '../config/watch.ts';
import type { GatewayConfig } from '../config/schema.ts';
import type { Logger } from '../mesh-proxy/observe/log.ts';
import type { Counter } from 'prom-client';
import { pluginDirStamp } from '../plugins/registry.ts';
import type { GatewaySnapshot } from './snapshot.ts';

export interface ReloadResult {
  readonly applied: boolean;
  readonly error?: string;
  readonly issues?: readonly { path: string; message: string }[];
  /** Sections that changed but only take effect after a restart. */
  readonly needsRestart?: readonly string[];
}

export interface ReloaderOptions {
  readonly file: string;
  readonly log: Logger;
  readonly reloads: Counter<'result'>;
  readonly current: () => GatewaySnapshot;
  readonly build: (config: GatewayConfig) => Promise<GatewaySnapshot>;
  readonly swap: (next: GatewaySnapshot) => void;
  readonly watch: boolean;
}

const RESTART_SECTIONS = ['node', 'store', 'listeners', 'admin', 'discovery', 'services', 'log', 'drainTimeout', 'mesh'] as const;

export class Reloader {
  readonly #o: ReloaderOptions;
  readonly #watcher: ConfigWatcher | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  readonly #onHup = () => void this.reload('SIGHUP');

  constructor(o: ReloaderOptions) {
    this.#o = o;
    if (o.watch) {
      this.#watcher = new ConfigWatcher({
        file: o.file,
        intervalMs: 1000,
        extra: async () => {
          const dir = o.current().pluginDir;
          return dir ? pluginDirStamp(dir) : '';
        },
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
    let next: GatewaySnapshot;
    // What the files looked like before loading them: a change made while this reload runs must
    // still differ from what the watcher records as seen, so its next poll reloads again.
    const seen = await this.#watcher?.read();
    try {
      // An empty file is a valid config with no routes, but at reload it is far more likely an
      // editor's truncate-then-write caught half way: swapping it in would answer 404 to everything.
      if ((await readFile(this.#o.file, 'utf8').catch(() => 'unreadable')).trim() === '') {
        throw new ConfigError('CONFIG_INVALID', this.#o.file, [{ path: '', message: 'the file is empty (a reload never empties the route table; restart to run with no config)' }]);
      }
      const config = await loadGatewayConfig(this.#o.file);
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
    const needsRestart = RESTART_SECTIONS.filter((k) => JSON.stringify(prev.config[k as keyof GatewayConfig]) !== JSON.stringify(next.config[k as keyof GatewayConfig]));
    this.#o.swap(next);
    this.#o.reloads.inc({ result: 'applied' });
    if (seen !== undefined) this.#watcher?.mark(seen);
    log.info({ trigger, routes: next.config.routes.length, plugins: next.chains.chains.size }, 'configuration reloaded');
    if (needsRestart.length > 0) log.warn({ sections: needsRestart }, 'these sections changed but take effect only after a restart');
    return { applied: true, needsRestart };
  }
}
