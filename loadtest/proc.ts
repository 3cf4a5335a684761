// Processes the harness starts: pinned to a core with taskset where it exists, sampled for RSS and
// CPU from /proc, and stopped by PID.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';

export const HAS_TASKSET = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
const CLK_TCK = 100;

export function which(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

export interface Pinned {
  child: ChildProcess;
  pid: number;
}

/** Spawns `cmd args` pinned to `core` (when taskset exists); resolves when `ready()` says so. */
export async function startPinned(
  core: number,
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; ipc?: boolean; ready: () => Promise<boolean>; timeoutMs?: number },
): Promise<Pinned> {
  const [file, argv] = HAS_TASKSET ? ['taskset', ['-c', String(core), cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, {
    env: { ...process.env, ...opts.env },
    stdio: opts.ipc ? ['ignore', 'ignore', 'pipe', 'ipc'] : ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited early (${child.exitCode}): ${stderr.slice(-500)}`);
    if (await opts.ready().catch(() => false)) return { child, pid: child.pid! };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`${cmd} did not become ready: ${stderr.slice(-500)}`);
}

export async function stopPid(p: Pinned): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  try {
    process.kill(p.pid, 'SIGTERM');
  } catch {
    return;
  }
  const t = setTimeout(() => {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {}
  }, 3000);
  await exited;
  clearTimeout(t);
}

/** CPU seconds used so far (user + system) by the process, from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}


/** Something accepts TCP connections on 127.0.0.1:port (for HTTP/2-only servers an HTTP/1.1 probe cannot ask). */
export function tcpOk(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** A redis-server for the run (no persistence), pinned to `core`; undefined when the binary is missing. */
export async function startRedis(port: number, core: number): Promise<Pinned | undefined> {
  if (!which('redis-server')) return undefined;
  return startPinned(core, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { ready: () => tcpOk(port) });
}
