// Each test that needs Redis starts its own redis-server on a free port and stops it afterwards;
// the machine's shared Redis on its standard port is never touched.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { freePort, waitFor } from './ports.ts';

const BINARY = process.env.REDIS_SERVER_BIN ?? 'redis-server';

export function redisServerAvailable(): boolean {
  return spawnSync(BINARY, ['--version'], { stdio: 'ignore' }).status === 0;
}

export class RedisServer {
  readonly port: number;
  #proc: ChildProcess | undefined;
  readonly #dir: string;

  private constructor(port: number) {
    this.port = port;
    this.#dir = mkdtempSync(join(tmpdir(), 'meshgate-redis-'));
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(port?: number): Promise<RedisServer> {
    if (!redisServerAvailable()) {
      throw new Error(`${BINARY} is not installed: these tests need the redis-server binary (Debian package redis-server), or set REDIS_SERVER_BIN`);
    }
    const s = new RedisServer(port ?? (await freePort()));
    await s.restart();
    return s;
  }

  /** (Re)starts on the same port, empty: nothing is persisted. */
  async restart(): Promise<void> {
    if (this.#proc && this.#proc.exitCode === null && this.#proc.signalCode === null) throw new Error('redis-server is already running');
    this.#proc = spawn(BINARY, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.#dir, '--loglevel', 'warning'], {
      stdio: 'ignore',
    });
    await waitFor(`redis-server on port ${this.port}`, () => ping(this.port), 10_000);
  }

  /** SIGKILL: an abrupt outage. */
  async kill(): Promise<void> {
    const p = this.#proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

function ping(port: number): Promise<true | undefined> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.setTimeout(500);
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG') ? true : undefined);
    });
    s.on('error', () => resolve(undefined));
    s.on('timeout', () => {
      s.destroy();
      resolve(undefined);
    });
  });
}
