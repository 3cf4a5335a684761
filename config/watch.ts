// Notices that a config file (or a directory it refers to) changed, by polling: editors and
// Kubernetes ConfigMaps replace files by rename, which fs.watch loses track of, and a one-second
// stat costs nothing. Changes are handed over one at a time; a change during a reload is picked up
// by the next poll.
import { stat } from 'node:fs/promises';

export interface ConfigWatchOptions {
  readonly file: string;
  /** Further state to watch (e.g. a plugin directory's file times), as a comparable string. */
  readonly extra?: () => Promise<string>;
  readonly intervalMs: number;
  readonly onChange: () => Promise<unknown>;
}

export class ConfigWatcher {
  readonly #o: ConfigWatchOptions;
  #stamp = '';
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(o: ConfigWatchOptions) {
    this.#o = o;
  }

  async start(): Promise<void> {
    this.#stamp = await this.#read();
    this.#timer = setInterval(() => void this.#poll(), this.#o.intervalMs);
    this.#timer.unref();
  }

  /** The current state, to be read before a reload starts loading files. */
  read(): Promise<string> {
    return this.#read();
  }

  /**
   * Records a state read with read() as seen, after a reload triggered some other way. Reading it
   * again after the reload would swallow a change made while the reload was loading files.
   */
  mark(stamp: string): void {
    this.#stamp = stamp;
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async #poll(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const stamp = await this.#read();
      if (stamp !== this.#stamp) {
        this.#stamp = stamp;
        await this.#o.onChange();
      }
    } finally {
      this.#busy = false;
    }
  }

  async #read(): Promise<string> {
    let own: string;
    try {
      const s = await stat(this.#o.file);
      own = `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch {
      own = 'missing';
    }
    return this.#o.extra ? `${own}|${await this.#o.extra()}` : own;
  }
}
