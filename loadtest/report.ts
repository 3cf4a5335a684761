// The markdown table: each figure also as a ratio to "direct" (no proxy) and to the best peer.
import type { TargetKind } from './targets.ts';

export interface Row {
  name: string;
  kind: TargetKind;
  rps: number;
  p50: number;
  p99: number;
  max: number;
  errors: number;
  rssMb: number;
  cpuPct: number;
  /** Share of responses from deliberately slow upstreams (slow-instance scenario). */
  slowShare?: number;
}

const f = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '–');
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '–');

export function renderTable(rows: Row[], fixedRate = false): string {
  if (rows.some((r) => r.slowShare !== undefined)) return renderBalancerTable(rows);
  if (fixedRate) return renderAddedLatency(rows);
  const direct = rows.find((r) => r.kind === 'direct');
  // A target that answered with errors measured something else (its error path): never "best".
  const valid = (r: Row) => r.errors === 0;
  const nodePeers = rows.filter((r) => r.kind === 'node-peer' && valid(r));
  const bestNode = nodePeers.reduce<Row | undefined>((b, r) => (!b || r.rps > b.rps ? r : b), undefined);
  const bestPeer = rows.filter((r) => (r.kind === 'node-peer' || r.kind === 'native-peer') && valid(r)).reduce<Row | undefined>((b, r) => (!b || r.rps > b.rps ? r : b), undefined);
  const lines = [
    '| target | req/s | p50 ms | p99 ms | max ms | errors | RSS MB | CPU % | req/s vs direct | req/s vs best Node peer | req/s vs best peer | p99 vs best Node peer |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.name}${valid(r) ? '' : ' ⚠ errors: not compared'} | ${f(r.rps)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${f(r.max, 1)} | ${r.errors} | ${f(r.rssMb)} | ${f(r.cpuPct)} | ${ratio(r.rps, direct?.rps ?? NaN)} | ${bestNode ? ratio(r.rps, bestNode.rps) : '–'} | ${bestPeer ? ratio(r.rps, bestPeer.rps) : '–'} | ${bestNode ? ratio(r.p99, bestNode.p99) : '–'} |`,
    );
  }
  const notes = [
    '',
    `Best Node peer: ${bestNode?.name ?? 'none'}; best peer overall: ${bestPeer?.name ?? 'none'}. RSS is the proxy's resident memory after the run; CPU % is its CPU time over the run's wall time (100 = one core).`,
  ];
  return lines.join('\n') + '\n' + notes.join('\n');
}

/** Balancers compared at a fixed rate: latency and where the requests went. */
function renderBalancerTable(rows: Row[]): string {
  const lines = ['| balancer | req/s | p50 ms | p99 ms | max ms | errors | slow share | RSS MB | CPU % |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of rows) {
    lines.push(`| ${r.name} | ${f(r.rps)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${f(r.max, 1)} | ${r.errors} | ${Number.isFinite(r.slowShare) ? `${((r.slowShare ?? 0) * 100).toFixed(2)}%` : '–'} | ${f(r.rssMb)} | ${f(r.cpuPct)} |`);
  }
  return lines.join('\n');
}

/** Fixed-rate runs against direct: the latency each target adds over it. */
function renderAddedLatency(rows: Row[]): string {
  const direct = rows.find((r) => r.kind === 'direct');
  const plus = (a: number, b: number | undefined) => (b === undefined || !Number.isFinite(a) || !Number.isFinite(b) ? '–' : `${a >= b ? '+' : '−'}${Math.abs(a - b).toFixed(2)}`);
  const lines = ['| target | req/s | p50 ms | p99 ms | max ms | errors | p50 added | p99 added | RSS MB | CPU % |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of rows) {
    lines.push(`| ${r.name} | ${f(r.rps)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${f(r.max, 1)} | ${r.errors} | ${r === direct ? '–' : plus(r.p50, direct?.p50)} | ${r === direct ? '–' : plus(r.p99, direct?.p99)} | ${f(r.rssMb)} | ${f(r.cpuPct)} |`);
  }
  return lines.join('\n');
}
