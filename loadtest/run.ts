// `npm run loadtest [-- --scenario NAME] [-- --quick]`: starts fixed upstreams, meshgate and its
// peers, runs an interleaved matrix (round robin over targets, several rounds, median per target)
// and prints a markdown table per scenario. On a multi-core machine the proxy under test is pinned
// to core 0, the load generator and the upstreams to core 1. Every process it starts is stopped by PID.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { generate, generateH2, pickGenerator, type RunStats } from './generators.ts';
import { cpuSeconds, HAS_TASKSET, rssMb, startPinned, startRedis, stopPid, tcpOk, which, type Pinned } from './proc.ts';
import { startNginx } from './nginx.ts';
import { renderTable, type Row } from './report.ts';
import { allTargets, balancerTargets, grpcTargets, meshPathTargets, pluginTargets, sidecarTargets, tlsH2Targets, type Target } from './targets.ts';
import { preparePlugins } from './plugin-setup.ts';
import { buildIsFresh } from '../bin/entry.js';

/** What a scenario sets up around its targets (keys, a redis-server) and the requests' headers. */
interface Prepared {
  env: Record<string, string>;
  headers: Record<string, string>;
  pids: Pinned[];
  note?: string;
}

interface Scenario {
  title: string;
  /** One entry per upstream: its added latency. */
  upstreams: number[];
  targets(basePort: number, quick: boolean, env: Record<string, string>): Target[];
  prepare?(workDir: string, basePort: number): Promise<Prepared>;
  note?: string;
  /** Fixed overall request rate (req/s); saturation when absent. */
  rate?: number;
  connections?: number;
  /** HTTP/2 over TLS with h2load: concurrent streams per connection. */
  h2Streams?: number;
  /** Unary gRPC over h2c: a gRPC upstream, and h2load sends framed POSTs to this path. */
  grpc?: boolean;
}

const SCENARIOS: Record<string, Scenario> = {
  'plain-h1': {
    title: 'plain HTTP/1.1 proxy',
    upstreams: [0],
    targets: (base, quick) => {
      const all = allTargets(base);
      return quick ? all.filter((t) => t.name === 'direct' || t.name === 'meshgate' || t.name.startsWith('fastify')) : all;
    },
  },
  plugins: {
    title: 'the edge with a plugin chain (jwt-auth + rate-limit + cors + headers) vs none',
    upstreams: [0],
    targets: (base, quick, env) => (quick ? pluginTargets(base, env).slice(2) : pluginTargets(base, env)),
    prepare: async (dir, base) => {
      const p = await preparePlugins(dir, base + 85, LOAD_CORE);
      return { env: p.env, headers: p.headers, pids: p.redis ? [p.redis] : [], note: p.storeNote };
    },
    note: 'Both rows get the same requests: a valid RS256 bearer token and an Origin header. jwt-auth verifies the token with a local public key (RS256), rate-limit checks jwt.sub against 10⁹/s, cors answers for the origin, headers sets one request and one response header.',
  },
  'tls-h2': {
    title: 'TLS + HTTP/2 at the edge to an HTTP/1.1 upstream',
    upstreams: [0],
    targets: (base, quick) => (quick ? tlsH2Targets(base).slice(0, 2) : tlsH2Targets(base)),
    connections: 50,
    h2Streams: 10,
    note: 'h2load -c50 -m10 (50 TLS connections, 10 concurrent streams each; TLS 1.3, a self-signed RSA-2048 certificate), 10,000 requests per second of the run\'s duration; latencies from its per-request log. Every upstream pool is sized for the 500 streams in flight. No "direct" row: the upstream speaks HTTP/1.1 only.',
  },
  'grpc-unary': {
    title: 'unary gRPC through the edge (h2c in, h2c to a gRPC upstream)',
    upstreams: [0],
    targets: (base, quick) => (quick ? grpcTargets(base).slice(0, 2) : grpcTargets(base)),
    connections: 50,
    h2Streams: 10,
    grpc: true,
    note: 'h2load -c50 -m10 over h2c (prior knowledge) sending a framed 16-byte request with content-type application/grpc and te: trailers to /bench.Bench/Unary; the upstream (servers/grpc-upstream.mjs, node:http2) answers one message and grpc-status 0 in trailers. meshgate routes it as a gRPC route (grpc: true) over a pooled, multiplexed h2c session (4 at most). A gRPC library server costs more per call than this upstream; the figures are the proxies\' costs.',
  },
  'mesh-latency': {
    title: 'latency the full mesh path (edge → sidecar → app) adds over direct at a fixed 2,000 req/s',
    upstreams: [0],
    targets: (base, quick) => (quick ? meshPathTargets(base).slice(0, 2) : meshPathTargets(base)),
    rate: 2000,
    connections: 64,
    note: 'Client-side latency at a fixed rate, evenly paced (the Kinvolk/Linkerd benchmark method). Both proxies run in one process on the proxy core; the mTLS row uses identities from a CA made for the run (RSA-2048, TLS 1.3).',
  },
  'mesh-mtls': {
    title: 'edge → sidecar → app at saturation, plain vs mTLS on the hop',
    upstreams: [0],
    targets: (base, quick) => (quick ? meshPathTargets(base).slice(2) : meshPathTargets(base)),
    note: 'Both proxies run in one process on the proxy core, so a request costs two proxy hops of that core. Connections on the hop are pooled and kept alive: mTLS costs per-record encryption, not a handshake per request.',
  },
  sidecar: {
    title: "a sidecar's memory and latency at a fixed 2,000 req/s (meshgate proxy, its own process)",
    upstreams: [0],
    targets: (base, quick, env) => (quick ? sidecarTargets(base, env).slice(1, 2) : sidecarTargets(base, env)),
    prepare: async (_dir, base) => {
      const redis = await startRedis(base + 85, LOAD_CORE);
      const env: Record<string, string> = redis ? { REDIS_URL: `redis://127.0.0.1:${base + 85}` } : {};
      return { env, headers: {}, pids: redis ? [redis] : [], note: redis ? 'the sidecars use a redis-server on the load core as their store' : 'the sidecars use the in-memory store (redis-server not installed)' };
    },
    rate: 2000,
    connections: 64,
    note: 'Requests go to the sidecar\'s inbound listener (plain HTTP; the mTLS hop is measured in mesh-mtls), which forwards them to the app. RSS is the sidecar process\'s after the run; the Node binary alone maps ~40 MB of it (`node -e ""` has 40 MB resident), which every Node process shares with the page cache.',
  },
  'slow-instance': {
    title: 'steady load on three upstreams, one 50 ms slower: meshgate balancers compared',
    upstreams: [0, 0, 50],
    targets: (base, quick) => (quick ? balancerTargets(base).filter((t) => !t.name.includes('least')) : balancerTargets(base)),
    rate: 1000,
    connections: 32,
    note: 'A fixed 1,000 req/s, evenly paced (loadtest/paced.ts): the latency a caller sees at steady load, not at saturation. "slow share" is the fraction of responses from the 50 ms upstream.',
  },
};

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'all' },
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    connections: { type: 'string', default: '50' },
    /** Comma list: only targets whose name contains one of these (plus "direct"). */
    targets: { type: 'string' },
    out: { type: 'string' },
    'base-port': { type: 'string', default: '18100' },
    help: { type: 'boolean', short: 'h' },
  },
});

const names = Object.keys(SCENARIOS);
if (values.help) {
  console.log(`Usage: npm run loadtest -- [--scenario all|${names.join('|')}] [--quick] [--rounds N] [--duration S] [--connections C] [--targets a,b] [--out FILE]`);
  process.exit(0);
}
const selected = (values.scenario === 'all' ? names : [values.scenario!]).filter((n) => {
  // HTTP/2 scenarios need h2load (Debian's nghttp2-client); without it they are skipped, said once.
  if (SCENARIOS[n]?.h2Streams === undefined || which('h2load')) return true;
  console.error(`scenario ${n} skipped: h2load not found (apt-get install nghttp2-client)`);
  return false;
});
for (const s of selected) {
  if (!SCENARIOS[s]) {
    console.error(`unknown scenario "${s}"; available: all, ${names.join(', ')}`);
    process.exit(2);
  }
}

const quick = values.quick;
const rounds = Number(values.rounds ?? (quick ? 1 : 3));
const seconds = Number(values.duration ?? (quick ? 1 : 5));
// A smoke run (--quick) measures nothing worth warming up for.
const warmupSeconds = quick ? 0 : 2;
const connections = Number(values.connections);
const basePort = Number(values['base-port']);
const multiCore = cpus().length >= 2;
const PROXY_CORE = 0;
const LOAD_CORE = multiCore ? 1 : 0;
const gen = pickGenerator();
const workDir = mkdtempSync(join(tmpdir(), 'meshgate-loadtest-'));
let started: Pinned[] = [];
const allPids: number[] = [];

let h2Runs = 0;

async function runScenario(name: string, s: Scenario): Promise<string> {
  const upstreamPorts: number[] = [];
  for (const [i, delay] of s.upstreams.entries()) {
    const port = basePort + 90 + i;
    started.push(await (s.grpc ? startGrpcUpstream(port) : startUpstream(port, delay)));
    allPids.push(started[started.length - 1].pid);
    upstreamPorts.push(port);
  }
  const conns = s.connections ?? connections;
  const prepared = s.prepare ? await s.prepare(workDir, basePort) : undefined;
  for (const p of prepared?.pids ?? []) {
    started.push(p);
    allPids.push(p.pid);
  }
  const only = values.targets?.split(',').filter(Boolean);
  const targets = s.targets(basePort, quick, prepared?.env ?? {}).filter((t) => !only || t.kind === 'direct' || only.some((o) => t.name.includes(o)));
  const procs = new Map<Target, Pinned | null>();
  for (const t of targets) {
    const p = await t.start(PROXY_CORE, upstreamPorts, workDir);
    if (p) {
      started.push(p);
      allPids.push(p.pid);
    }
    procs.set(t, p);
  }

  const samples = new Map<Target, Array<RunStats & { cpu: number; rss: number }>>();
  for (let round = 0; round < rounds; round++) {
    // Rotate the order each round so no target always runs right after the same neighbour.
    const order = targets.map((_, i) => targets[(i + round) % targets.length]);
    for (const t of order) {
      const url = `${t.scheme ?? 'http'}://127.0.0.1:${t.kind === 'direct' ? upstreamPorts[0] : t.port}${s.grpc ? '/bench.Bench/Unary' : '/bench'}`;
      const extra = s.grpc ? ['-d', grpcBody(), '-H', 'content-type: application/grpc', '-H', 'te: trailers'] : [];
      const load = (secs: number) =>
        s.h2Streams !== undefined ? generateH2(LOAD_CORE, url, conns, s.h2Streams, secs, join(workDir, `h2load-${++h2Runs}.log`), extra) : generate(gen, LOAD_CORE, url, conns, secs, s.rate, prepared?.headers);
      if (warmupSeconds > 0) await load(warmupSeconds);
      const p = procs.get(t) ?? null;
      const cpu0 = p ? cpuSeconds(p.pid) : NaN;
      const t0 = performance.now();
      const stats = await load(seconds);
      const wall = (performance.now() - t0) / 1000;
      const cpu = p ? ((cpuSeconds(p.pid) - cpu0) / wall) * 100 : NaN;
      const rss = p ? rssMb(p.pid) : NaN;
      const list = samples.get(t) ?? [];
      list.push({ ...stats, cpu, rss });
      samples.set(t, list);
      process.stderr.write(`${name} round ${round + 1}/${rounds} ${t.name.padEnd(30)} ${stats.rps.toFixed(0).padStart(7)} req/s  p99 ${stats.p99.toFixed(2)} ms${stats.byUpstream ? ` ${JSON.stringify(stats.byUpstream)}` : ''}\n`);
    }
  }
  await Promise.all(started.map(stopPid));
  started = [];

  const rows: Row[] = targets.map((t) => {
    const list = samples.get(t) ?? [];
    return {
      name: t.name,
      kind: t.kind,
      rps: median(list.map((x) => x.rps)),
      p50: median(list.map((x) => x.p50)),
      p99: median(list.map((x) => x.p99)),
      max: median(list.map((x) => x.max)),
      errors: list.reduce((a, x) => a + x.errors, 0),
      rssMb: median(list.map((x) => x.rss)),
      cpuPct: median(list.map((x) => x.cpu)),
      slowShare: s.upstreams.some((d) => d > 0) ? median(list.map((x) => slowShare(x.byUpstream, upstreamPorts, s.upstreams))) : undefined,
    };
  });
  return [
    `### Scenario ${name}: ${s.title}`,
    '',
    `${conns} connections, ${rounds} round(s) × ${seconds} s per target (median), generator ${s.rate ? 'paced (open loop)' : s.h2Streams !== undefined ? 'h2load' : gen}. Upstream: ${upstreamKind(s)}. ${s.note ?? ''}${prepared?.note ? ` ${prepared.note[0].toUpperCase()}${prepared.note.slice(1)}.` : ''}`,
    '',
    renderTable(rows, s.rate !== undefined),
    '',
  ].join('\n');
}

/**
 * meshgate's targets run from the compiled build only while it is newer than every source; a stale
 * one means tsx's loader (tens of MB of RSS, a slower start), so the table says which it was.
 */
function buildNote(freshAtStart: boolean): string {
  if (!freshAtStart) return 'meshgate ran from its TypeScript sources through tsx (the build was stale: run `npm run build`); its RSS and CPU figures are not representative.';
  if (!buildIsFresh()) return 'Sources changed during the run: targets started after that ran from the sources through tsx; run again for representative figures.';
  return 'meshgate ran from its compiled build.';
}

async function main(): Promise<void> {
  const fresh = buildIsFresh();
  if (!fresh) console.error('warning: the build is older than the sources: meshgate runs through tsx (run `npm run build` for representative figures)');
  const header = [
    HAS_TASKSET && multiCore
      ? `Pinned: proxy under test on core ${PROXY_CORE}; load generator and upstreams on core ${LOAD_CORE} (taskset).`
      : 'Not pinned (taskset missing or a single core): figures are indicative only.',
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}; Node ${process.version}${versionOf('nginx', ['-v'])}${versionOf('haproxy', ['-v'])}.`,
    '',
  ].join('\n');
  const parts = [header];
  for (const name of selected) parts.push(await runScenario(name, SCENARIOS[name]));
  parts.push(buildNote(fresh), '');
  const out = parts.join('\n');
  console.log(out);
  if (values.out) writeFileSync(values.out, `# meshgate load-test results\n\nRun on ${new Date().toISOString().slice(0, 10)} with \`npm run loadtest\`.\n\n${out}`);
}

const HAS_NGINX = which('nginx');

function upstreamKind(s: Scenario): string {
  if (s.grpc) return 'node:http2 gRPC (servers/grpc-upstream.mjs)';
  const node = 'node:http (servers/upstream.mjs)';
  if (!HAS_NGINX) return node;
  return s.upstreams.every((d) => d === 0) ? 'nginx serving a static 90-byte body' : `nginx (static) for the immediate ones, ${node} for the delayed one`;
}

/**
 * The upstreams: a static nginx when it exists and no delay is wanted — the cheapest server at hand,
 * so it and the load generator leave the proxy, not themselves, as the bottleneck — else node:http.
 */
async function startUpstream(port: number, delayMs: number): Promise<Pinned> {
  const ready = async () => (await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined))?.status === 200;
  if (delayMs === 0 && HAS_NGINX) {
    return startNginx(
      LOAD_CORE,
      join(workDir, `upstream-${port}`),
      `  keepalive_requests 10000000;
  keepalive_timeout 65s;
  server {
    listen 127.0.0.1:${port};
    location / { default_type application/json; return 200 '{"ok":true,"service":"bench","message":"hello from the benchmark upstream, 100 bytes-ish"}'; }
  }`,
      ready,
    );
  }
  return startPinned(LOAD_CORE, process.execPath, [fileURLToPath(new URL('./servers/upstream.mjs', import.meta.url))], {
    env: { PORT: String(port), DELAY_MS: String(delayMs) },
    ipc: true,
    ready,
  });
}

/** The gRPC upstream of scenario grpc-unary (servers/grpc-upstream.mjs, node:http2 h2c). */
function startGrpcUpstream(port: number): Promise<Pinned> {
  return startPinned(LOAD_CORE, process.execPath, [fileURLToPath(new URL('./servers/grpc-upstream.mjs', import.meta.url))], { env: { PORT: String(port) }, ipc: true, ready: () => tcpOk(port) });
}

/** One framed gRPC request message (16 bytes of payload), written once for h2load's -d. */
function grpcBody(): string {
  const file = join(workDir, 'grpc-request.bin');
  const payload = Buffer.from([0x0a, 14, ...Buffer.from('hello, meshgate')].slice(0, 16));
  const frame = Buffer.alloc(5 + payload.length);
  frame.writeUInt32BE(payload.length, 1);
  payload.copy(frame, 5);
  writeFileSync(file, frame);
  return file;
}

function versionOf(bin: string, args: string[]): string {
  // nginx prints its version on stderr, HAProxy on stdout.
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  const line = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0].trim();
  return r.status === 0 && line ? `; ${line}` : '';
}

function slowShare(by: Record<string, number> | undefined, ports: number[], delays: number[]): number {
  if (!by) return NaN;
  const total = Object.values(by).reduce((a, b) => a + b, 0);
  const slow = ports.filter((_, i) => delays[i] > 0).reduce((a, p) => a + (by[String(p)] ?? 0), 0);
  return total > 0 ? slow / total : NaN;
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
  process.stderr.write(`stopped pids: ${allPids.join(' ')}\n`);
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
