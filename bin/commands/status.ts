// `meshgate status`: what a running gateway or sidecar knows right now, from its admin API:
// services and their endpoints per datacenter (health, breaker, ejection, latency), traffic
// splits, and the datacenter failover plan.
import { parseArgs } from 'node:util';
import { EXIT_OK } from '../lifecycle.ts';
import type { EndpointsDoc, EndpointView } from '../../mesh-proxy/admin/endpoints-view.ts';
import { ADMIN_OPTIONS, adminJson, adminTarget, table, withAdmin } from './admin-client.ts';

export const STATUS_HELP = `Usage: meshgate status [--admin URL] [--token TOKEN] [--json]

What a running gateway or sidecar knows right now, read from its admin API: every service with its
endpoints per datacenter (health, circuit breaker, ejection, latency estimate, requests in flight),
traffic splits, and (on a gateway with peer datacenters) the failover plan.

Options:
  --admin URL     the admin API (default http://127.0.0.1:9901, or MESHGATE_ADMIN_URL;
                  a sidecar's is on :4191 by default)
  --token TOKEN   the admin token, when one is configured (or MESHGATE_ADMIN_TOKEN)
  --json          everything as one JSON document
  -h, --help      show this help`;

interface DatacentersDoc {
  dc: string;
  policy: { threshold: number; hysteresis: number; failbackAfterMs: number };
  peers: Array<{ dc: string; reachable: boolean; error: string | null }>;
  services: Record<string, { mode: string; localShare: number; failoverTo: string | null; datacenters: Array<{ dc: string; healthy: number; total: number; local: boolean; reachable?: boolean }> }>;
}

interface Split {
  service: string;
  version: number;
  weights: Record<string, number>;
  match?: Array<{ header?: { name: string; value: string }; cookie?: { name: string; value: string }; subset: string }>;
  mirror?: { subset: string; percent: number };
}

export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: ADMIN_OPTIONS,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${STATUS_HELP}\n`);
    return EXIT_OK;
  }
  const t = adminTarget(values.admin, values.token);
  return withAdmin('status', async () => {
    const [endpoints, datacenters, splits] = await Promise.all([
      adminJson<EndpointsDoc>(t, '/endpoints'),
      adminJson<DatacentersDoc>(t, '/datacenters'),
      adminJson<{ splits: Split[] }>(t, '/splits'),
    ]);
    const splitList = splits?.splits ?? [];
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ admin: t.base, endpoints: endpoints ?? null, datacenters: datacenters ?? null, splits: splitList }, null, 2)}\n`);
      return EXIT_OK;
    }
    process.stdout.write(render(t.base, endpoints, datacenters, splitList));
    return EXIT_OK;
  });
}

function render(base: string, eps: EndpointsDoc | undefined, dcs: DatacentersDoc | undefined, splits: Split[]): string {
  const out: string[] = [];
  const sync = eps ? `endpoints from ${eps.source}${eps.stalenessSeconds !== null ? `, synced ${eps.stalenessSeconds.toFixed(1)} s ago` : ''}` : 'no endpoint view';
  out.push(`meshgate status · ${base} · ${sync}${dcs ? ` · datacenter ${dcs.dc}` : ''}`, '');
  const services = eps?.services ?? {};
  const names = Object.keys(services).filter((n) => !n.includes('@')).sort();
  if (names.length === 0) out.push('  no services known yet', '');
  for (const name of names) {
    out.push(name);
    const list = services[name];
    if (list.length === 0) out.push('  no endpoints');
    else {
      const rows = [['ENDPOINT', 'ADDRESS', 'DC', 'ZONE', 'STATE', 'BREAKER', 'EWMA', 'IN-FLIGHT', 'METADATA']];
      for (const e of list) {
        const state = e.ejected ? `ejected (${e.ejected.reason}${e.ejected.forMs !== null ? `, ${(e.ejected.forMs / 1000).toFixed(1)} s` : ''})` : e.breaker.state === 'open' ? 'unavailable' : 'healthy';
        const breaker = e.breaker.state === 'open' ? `open ${(e.breaker.openForMs / 1000).toFixed(1)} s` : e.breaker.state;
        const md = Object.entries(e.metadata).map(([k, v]) => `${k}=${v}`).join(',');
        rows.push([e.id, `${e.address}:${e.port}`, e.dc, e.zone || '-', state, breaker, `${e.ewmaMs.toFixed(1)} ms`, String(e.inFlight), md || '-']);
      }
      out.push(table(rows));
    }
    for (const [remote, list] of Object.entries(services)) {
      if (!remote.startsWith(`${name}@`)) continue;
      for (const e of list) out.push(`  via ${remote.slice(name.length + 1)}'s edge ${e.address}:${e.port}: breaker ${e.breaker.state}, ${e.ewmaMs.toFixed(1)} ms, ${e.inFlight} in flight`);
    }
    const f = dcs?.services[name];
    if (f) {
      const per = f.datacenters.map((d) => `${d.dc}${d.local ? ' (here)' : d.reachable === false ? ' (unreachable)' : ''} ${d.healthy}/${d.total} healthy`).join(', ');
      const plan = f.mode === 'local' ? `all local${f.failoverTo ? ` (standby ${f.failoverTo})` : ''}` : f.failoverTo ? `shifting: ${Math.round(f.localShare * 100)}% local, the rest to ${f.failoverTo}` : 'degraded, but no peer can serve it: all local';
      out.push(`  failover: ${plan}; ${per}`);
    }
    const split = splits.find((s) => s.service === name);
    if (split) {
      const w = Object.entries(split.weights).map(([k, v]) => `${k}=${v}`).join(' ');
      const m = (split.match ?? []).map((r) => (r.header ? `header ${r.header.name}=${r.header.value}` : r.cookie ? `cookie ${r.cookie.name}=${r.cookie.value}` : '?') + ` → ${r.subset}`);
      out.push(`  split v${split.version}: ${w}${m.length ? `; ${m.join('; ')}` : ''}${split.mirror ? `; mirror ${split.mirror.percent}% to ${split.mirror.subset}` : ''}`);
    }
    out.push('');
  }
  if (dcs) {
    out.push(`datacenters: this is ${dcs.dc}; failover below ${dcs.policy.threshold * 100}% healthy, back at ${(dcs.policy.threshold + dcs.policy.hysteresis) * 100}% held ${dcs.policy.failbackAfterMs / 1000} s`);
    out.push(table([['PEER', 'REACHABLE', 'ERROR'], ...dcs.peers.map((p) => [p.dc, p.reachable ? 'yes' : 'no', p.error ?? '-'])]), '');
  }
  return `${out.join('\n')}\n`;
}
