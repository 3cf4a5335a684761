// Load generators: wrk (C, preferred: it leaves the most of its core to the upstream) when
// installed, autocannon otherwise. Both run pinned to the load core.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { HAS_TASKSET, which } from './proc.ts';

export interface RunStats {
  rps: number;
  p50: number; // ms
  p99: number;
  max: number;
  errors: number;
  /** Fixed-rate runs: responses per upstream (its x-upstream header). */
  byUpstream?: Record<string, number>;
}

export type GeneratorName = 'wrk' | 'autocannon';

export function pickGenerator(): GeneratorName {
  return which('wrk') ? 'wrk' : 'autocannon';
}

/** Runs a generator pinned to `core`; killed (and reported as failed) after `timeoutMs`. */
function run(core: number, cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const [file, argv] = HAS_TASKSET ? ['taskset', ['-c', String(core), cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} failed (${signal ?? code}): ${err.slice(-400)}`));
    });
  });
}

/**
 * Load at saturation (`rate` undefined), or open-loop at a fixed rate with evenly paced sends
 * (paced.ts: autocannon's -R sends in bursts, and wrk has no rate control). Fixed-rate latencies
 * are what a caller at steady load sees.
 */
export async function generate(gen: GeneratorName, core: number, url: string, connections: number, seconds: number, rate?: number, headers: Record<string, string> = {}): Promise<RunStats> {
  const h = Object.entries(headers);
  if (rate !== undefined) {
    const script = fileURLToPath(new URL('./paced.ts', import.meta.url));
    // Bounded by the run's own length (a soak runs minutes), with room for start-up and the tail.
    return JSON.parse(await run(core, process.execPath, ['--import', 'tsx', script, url, String(rate), String(seconds), String(connections)], (seconds + 60) * 1000)) as RunStats;
  }
  if (gen === 'wrk') return parseWrk(await run(core, 'wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', ...h.flatMap(([k, v]) => ['-H', `${k}: ${v}`]), url], (seconds + 60) * 1000));
  return autocannon(core, url, connections, seconds, h.flatMap(([k, v]) => ['-H', `${k}=${v}`]));
}

async function autocannon(core: number, url: string, connections: number, seconds: number, extra: string[]): Promise<RunStats> {
  const bin = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
  const out = await run(core, process.execPath, [bin, '-c', String(connections), '-d', String(seconds), ...extra, '-j', url]);
  const j = JSON.parse(out) as {
    requests: { average: number };
    latency: { p50: number; p99: number; max: number };
    errors: number;
    non2xx: number;
    timeouts: number;
  };
  return { rps: j.requests.average, p50: j.latency.p50, p99: j.latency.p99, max: j.latency.max, errors: j.errors + j.non2xx + j.timeouts };
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

/**
 * HTTP/2 load with h2load (Debian's nghttp2-client): `connections` TLS connections with `streams`
 * concurrent streams each, for a fixed number of requests (10,000 per second of `seconds`): h2load's
 * timed mode (-D) sometimes never exits at its end. Percentiles come from its per-request log.
 */
export async function generateH2(core: number, url: string, connections: number, streams: number, seconds: number, logFile: string, extra: readonly string[] = []): Promise<RunStats> {
  const requests = Math.max(connections * streams * 4, Math.round(seconds * 10_000));
  const out = await run(core, 'h2load', ['-c', String(connections), '-m', String(streams), '-n', String(requests), '-t', '1', '--log-file', logFile, ...extra, url], (seconds * 10 + 30) * 1000);
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1] ?? NaN);
  const failed = /requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const errors = (failed ? Number(failed[1]) + Number(failed[2]) + Number(failed[3]) : 0) + (codes ? Number(codes[3]) + Number(codes[4]) : 0);
  const { readFileSync, rmSync } = await import('node:fs');
  const log = readFileSync(logFile, 'utf8');
  rmSync(logFile, { force: true });
  const durations = log
    .split('\n')
    .map((l) => Number(l.split('\t')[2]) / 1000)
    .filter((d) => Number.isFinite(d))
    .sort((a, b) => a - b);
  const at = (q: number) => durations[Math.min(durations.length - 1, Math.floor(q * durations.length))] ?? NaN;
  return { rps, p50: at(0.5), p99: at(0.99), max: durations.at(-1) ?? NaN, errors };
}

export function parseWrk(out: string): RunStats {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const p50 = toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? '');
  const p99 = toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '');
  const latLine = /Latency\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
  const max = latLine ? toMs(latLine[3]) : NaN;
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + non2xx;
  return { rps, p50, p99, max, errors };
}
