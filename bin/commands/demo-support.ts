// The demo's moving parts that are not meshgate: its services as child processes, ports to wait
// for, its development certificate, and a datacenter's store (a redis-server of its own when the
// binary exists, the in-memory store otherwise).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { selfSignedCertificate } from '../../gateway/listeners/dev-certificate.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import type { Store } from '../../mesh-proxy/store/types.ts';

// From bin/commands/ in the sources, or dist/bin/commands/ in the build: the first ancestor holding them.
export const SERVICES_DIR = findUp('examples/demo-services/');

function findUp(rel: string): string {
  for (let up = '../../'; up.length <= 15; up += '../') {
    const dir = fileURLToPath(new URL(up + rel, import.meta.url));
    if (existsSync(dir)) return dir;
  }
  throw new Error(`cannot find ${rel} above ${import.meta.url}`);
}

export interface DemoApp {
  service: string;
  id: string;
  app: number;
  outbound: number;
}

export function startApp(inst: DemoApp): ChildProcess {
  const child = spawn(process.execPath, [`${SERVICES_DIR}${inst.service}.mjs`], {
    env: { ...process.env, PORT: String(inst.app), INSTANCE: inst.id, MESH_OUTBOUND_PORT: String(inst.outbound) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM') process.stderr.write(`demo service ${inst.id} exited (${signal ?? code})\n`);
  });
  return child;
}

export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`demo service on port ${port} did not start within ${timeoutMs} ms`);
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

/** The demo's HTTPS certificate for localhost / 127.0.0.1, made on the first run and kept in the state dir. */
export async function developmentCertificate(stateDir: string): Promise<{ cert: string; key: string }> {
  const dir = join(stateDir, 'tls');
  const files = { cert: join(dir, 'dev-cert.pem'), key: join(dir, 'dev-key.pem') };
  if (existsSync(files.cert) && existsSync(files.key)) return files;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const pair = await selfSignedCertificate(['localhost', '127.0.0.1', '::1'], 365);
  await writeFile(files.key, pair.key, { mode: 0o600 });
  await writeFile(files.cert, pair.cert);
  return files;
}

/** A datacenter's store: what its proxies are given (an in-process store, or a redis:// URL). */
export interface DemoStore {
  readonly description: string;
  readonly store: Store | undefined;
  readonly config: { kind: 'redis'; url: string } | undefined;
  stop(): Promise<void>;
}

/** A redis-server of its own on `port` when the binary exists (nothing persisted), else in memory. */
export async function startDemoStore(port: number, wantRedis: boolean): Promise<DemoStore> {
  if (wantRedis && spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0) {
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
    await waitForPort(port, 10_000);
    return { description: `redis-server on 127.0.0.1:${port}`, store: undefined, config: { kind: 'redis', url: `redis://127.0.0.1:${port}` }, stop: () => stopChild(child) };
  }
  const store = new MemoryStore();
  return { description: 'in-memory store', store, config: undefined, stop: () => store.close() };
}
