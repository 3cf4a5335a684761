// `npm run loadtest:soak [-- --minutes 5 --rate 1000]`: a bounded soak. The edge alone and the full
// mesh path (edge → sidecar → app, one process) each carry a fixed request rate for the whole run
// while their resident memory is sampled; the table shows RSS over time and the growth from the
// end of the first minute (warm: JIT, pools, V8's young generation sized) to the end. Pinned like
// `npm run loadtest`: proxies on core 0, generators and the upstream on core 1. Every process it
// starts is stopped by PID.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildIsFresh, ROOT } from '../bin/entry.js';
import { generate, type RunStats } from './generators.ts';
import { HAS_TASKSET, rssMb, startPinned, stopPid, type Pinned } from './proc.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    rate: { type: 'string', default: '1000' },
    'base-port': { type: 'string', default: '18200' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log('Usage: npm run loadtest:soak -- [--minutes 5] [--rate 1000] [--base-port 18200]');
  process.exit(0);
}
const minutes = Number(values.minutes);
const rate = Number(values.rate);
const base = Number(values['base-port']);
if (!(minutes > 0 && minutes <= 60) || !(rate > 0 && rate <= 20_000)) {
  console.error('--minutes must be in (0, 60] and --rate in (0, 20000]');
  process.exit(2);
}
const PROXY_CORE = 0;
const LOAD_CORE = 1;
const SAMPLE_EVERY_MS = 15_000;
const workDir = mkdtempSync(join(tmpdir(), 'meshgate-soak-'));
const started: Pinned[] = [];

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const httpOk = async (port: number, path = '/') => (await fetch(`http://127.0.0.1:${port}${path}`).catch(() => undefined))?.status === 200;

function meshgate(file: string, port: number, upstream: number): Promise<Pinned> {
  const built = buildIsFresh() ? join(ROOT, 'dist', 'loadtest', 'servers', file.replace(/\.ts$/, '.js')) : undefined;
  const args = built ? [built] : ['--import', 'tsx', here(`./servers/${file}`)];
  return startPinned(PROXY_CORE, process.execPath, args, {
    env: { PORT: String(port), UPSTREAM_PORT: String(upstream), ADMIN_PORT: String(port + 1), STATE_DIR: workDir },
    ipc: true,
    ready: () => httpOk(port),
    timeoutMs: 30_000,
  });
}

interface Subject {
  name: string;
  proc: Pinned;
  port: number;
  samples: Array<{ at: number; rss: number }>;
  stats?: RunStats;
}

async function main(): Promise<void> {
  const upstreamPort = base + 90;
  const upstream = await startPinned(LOAD_CORE, process.execPath, [here('./servers/upstream.mjs')], { env: { PORT: String(upstreamPort) }, ipc: true, ready: () => httpOk(upstreamPort) });
  started.push(upstream);
  const subjects: Subject[] = [];
  for (const [name, file, port] of [
    ['edge gateway', 'meshgate-edge.ts', base],
    ['edge → sidecar → app (one process)', 'meshgate-mesh.ts', base + 10],
  ] as const) {
    const proc = await meshgate(file, port, upstreamPort);
    started.push(proc);
    subjects.push({ name, proc, port, samples: [] });
  }
  const t0 = Date.now();
  const sample = () => {
    for (const s of subjects) s.samples.push({ at: (Date.now() - t0) / 1000, rss: rssMb(s.proc.pid) });
  };
  sample();
  const timer = setInterval(sample, SAMPLE_EVERY_MS);
  process.stderr.write(`soak: ${minutes} min at ${rate} req/s on each of ${subjects.length} targets${HAS_TASKSET ? ' (pinned)' : ''}\n`);
  const runs = subjects.map(async (s) => {
    s.stats = await generate('autocannon', LOAD_CORE, `http://127.0.0.1:${s.port}/bench`, 64, minutes * 60, rate);
  });
  await Promise.all(runs);
  clearInterval(timer);
  sample();

  const lines = [
    `### Soak: ${minutes} min at ${rate} req/s per target`,
    '',
    `${HAS_TASKSET ? 'Pinned: proxies on core 0, generators and upstream on core 1.' : 'Not pinned.'} RSS sampled every ${SAMPLE_EVERY_MS / 1000} s; "growth" is from the first sample at or after 60 s to the last.`,
    '',
    '| target | requests/s | p99 ms | errors | RSS at start MB | RSS at 1 min MB | RSS max MB | RSS at end MB | growth after 1 min |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const s of subjects) {
    const warm = s.samples.find((x) => x.at >= 60) ?? s.samples[0];
    const end = s.samples[s.samples.length - 1];
    const max = Math.max(...s.samples.map((x) => x.rss));
    const growth = end.rss - warm.rss;
    lines.push(`| ${s.name} | ${s.stats!.rps.toFixed(0)} | ${s.stats!.p99.toFixed(2)} | ${s.stats!.errors} | ${s.samples[0].rss.toFixed(0)} | ${warm.rss.toFixed(0)} | ${max.toFixed(0)} | ${end.rss.toFixed(0)} | ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MB (${((growth / warm.rss) * 100).toFixed(1)}%) |`);
  }
  lines.push('', 'RSS over time (MB):', '', `| s | ${subjects.map((s) => s.name).join(' | ')} |`, `|---:|${subjects.map(() => '---:').join('|')}|`);
  for (let i = 0; i < subjects[0].samples.length; i++) lines.push(`| ${subjects[0].samples[i].at.toFixed(0)} | ${subjects.map((s) => s.samples[i]?.rss.toFixed(0) ?? '').join(' | ')} |`);
  console.log(lines.join('\n'));
}

try {
  await main();
} catch (err) {
  console.error(`soak failed: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  await Promise.all(started.map(stopPid));
  rmSync(workDir, { recursive: true, force: true });
  process.stderr.write(`stopped pids: ${started.map((p) => p.pid).join(' ')}\n`);
}
