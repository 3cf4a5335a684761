// `npm run loadtest [-- --scenario NAME] [-- --quick]`: starts a fixed upstream, meshgate and its
// peers, runs an interleaved matrix (round robin over targets, several rounds, median per target)
// and prints a markdown table. On a multi-core machine the proxy under test is pinned to core 0,
// the load generator and the upstream to core 1. Every process it starts is stopped by PID.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { generate, pickGenerator, type RunStats } from './generators.ts';
import { cpuSeconds, HAS_TASKSET, rssMb, startPinned, stopPid, type Pinned } from './proc.ts';
import { renderTable, type Row } from './report.ts';
import { allTargets, type Target } from './targets.ts';
import { fileURLToPath } from 'node:url';

const SCENARIOS = ['plain-h1'] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'plain-h1' },
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    connections: { type: 'string', default: '50' },
    out: { type: 'string' },
    'base-port': { type: 'string', default: '18100' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help) {
  console.log(`Usage: npm run loadtest -- [--scenario ${SCENARIOS.join('|')}] [--quick] [--rounds N] [--duration S] [--connections C] [--out FILE]`);
  process.exit(0);
}
if (!SCENARIOS.includes(values.scenario as Scenario)) {
  console.error(`unknown scenario "${values.scenario}"; available: ${SCENARIOS.join(', ')}`);
  process.exit(2);
}

const quick = values.quick;
const rounds = Number(values.rounds ?? (quick ? 1 : 3));
const seconds = Number(values.duration ?? (quick ? 1 : 5));
const warmupSeconds = quick ? 1 : 2;
const connections = Number(values.connections);
const basePort = Number(values['base-port']);
const multiCore = cpus().length >= 2;
const PROXY_CORE = 0;
const LOAD_CORE = multiCore ? 1 : 0;
const gen = pickGenerator();
const workDir = mkdtempSync(join(tmpdir(), 'meshgate-loadtest-'));
const started: Pinned[] = [];

async function main(): Promise<void> {
  let targets = allTargets(basePort);
  if (quick) targets = targets.filter((t) => t.name === 'direct' || t.name === 'meshgate' || t.name.startsWith('fastify'));

  const upstreamPort = basePort + 99;
  const upstream = await startPinned(LOAD_CORE, process.execPath, [fileURLToPath(new URL('./servers/upstream.mjs', import.meta.url))], {
    env: { PORT: String(upstreamPort) },
    ipc: true,
    ready: async () => (await fetch(`http://127.0.0.1:${upstreamPort}/`).catch(() => undefined))?.status === 200,
  });
  started.push(upstream);

  const procs = new Map<Target, Pinned | null>();
  for (const t of targets) {
    const p = await t.start(PROXY_CORE, upstreamPort, workDir);
    if (p) started.push(p);
    procs.set(t, p);
  }

  const samples = new Map<Target, Array<RunStats & { cpu: number; rss: number }>>();
  for (let round = 0; round < rounds; round++) {
    // Rotate the order each round so no target always runs right after the same neighbour.
    const order = targets.map((_, i) => targets[(i + round) % targets.length]);
    for (const t of order) {
      const url = `http://127.0.0.1:${t.kind === 'direct' ? upstreamPort : t.port}/bench`;
      await generate(gen, LOAD_CORE, url, connections, warmupSeconds);
      const p = procs.get(t) ?? null;
      const cpu0 = p ? cpuSeconds(p.pid) : NaN;
      const t0 = performance.now();
      const stats = await generate(gen, LOAD_CORE, url, connections, seconds);
      const wall = (performance.now() - t0) / 1000;
      const cpu = p ? ((cpuSeconds(p.pid) - cpu0) / wall) * 100 : NaN;
      const rss = p ? rssMb(p.pid) : NaN;
      const list = samples.get(t) ?? [];
      list.push({ ...stats, cpu, rss });
      samples.set(t, list);
      process.stderr.write(`round ${round + 1}/${rounds} ${t.name.padEnd(30)} ${stats.rps.toFixed(0).padStart(7)} req/s  p99 ${stats.p99.toFixed(2)} ms\n`);
    }
  }

  const rows: Row[] = targets.map((t) => {
    const s = samples.get(t) ?? [];
    return {
      name: t.name,
      kind: t.kind,
      rps: median(s.map((x) => x.rps)),
      p50: median(s.map((x) => x.p50)),
      p99: median(s.map((x) => x.p99)),
      max: median(s.map((x) => x.max)),
      errors: s.reduce((a, x) => a + x.errors, 0),
      rssMb: median(s.map((x) => x.rss)),
      cpuPct: median(s.map((x) => x.cpu)),
    };
  });

  const header = [
    `### Scenario ${values.scenario}: plain HTTP/1.1 proxy, ${connections} connections, ${rounds} round(s) × ${seconds} s per target (median), generator ${gen}`,
    '',
    HAS_TASKSET && multiCore
      ? `Pinned: proxy under test on core ${PROXY_CORE}; load generator and upstream on core ${LOAD_CORE} (taskset).`
      : 'Not pinned (taskset missing or a single core): figures are indicative only.',
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}; Node ${process.version}${versionOf('nginx', ['-v'])}${versionOf('haproxy', ['-v'])}.`,
    '',
  ].join('\n');
  const table = `${header}\n${renderTable(rows)}\n`;
  console.log(table);
  if (values.out) writeFileSync(values.out, `# meshgate load-test results\n\nRun on ${new Date().toISOString().slice(0, 10)} with \`npm run loadtest\`.\n\n${table}`);
}

function versionOf(bin: string, args: string[]): string {
  // nginx prints its version on stderr, HAProxy on stdout.
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  const line = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0].trim();
  return r.status === 0 && line ? `; ${line}` : '';
}

function median(xs: number[]): number {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

async function cleanup(): Promise<void> {
  await Promise.all(started.map(stopPid));
  rmSync(workDir, { recursive: true, force: true });
}

process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
try {
  await main();
  await cleanup();
} catch (err) {
  console.error(`loadtest failed: ${(err as Error).message}`);
  await cleanup();
  process.exit(1);
}
