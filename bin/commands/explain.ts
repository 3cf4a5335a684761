// `meshgate explain`: asks a running gateway what it would do with a request, and why.
import { parseArgs } from 'node:util';
import { EXIT_OK, EXIT_USAGE } from '../lifecycle.ts';
import { ADMIN_OPTIONS, adminJson, adminTarget, table, withAdmin } from './admin-client.ts';

export const EXPLAIN_HELP = `Usage: meshgate explain [METHOD] URL|PATH [-H 'Name: value']... [--host HOST] [--admin URL] [--token TOKEN] [--json]

Asks a running gateway (its admin API) what it would do with a request right now, and why:
  - the route that matches, the upstream path after rewriting, the policies (plugins) it runs
  - the traffic split: the subset and whether a match rule or the weights chose it
  - the datacenter: local, or a peer when failing over, with the health behind that plan
  - the endpoint the balancer would most likely pick, with every endpoint's breaker, ejection,
    latency estimate and requests in flight
Nothing is sent to any upstream.

  meshgate explain GET http://shop.example/catalog/items -H 'x-canary: always'
  meshgate explain /orders/42 --host shop.example

Options:
  -H, --header 'N: v'  a request header (repeatable)
  --host HOST          the Host (default: the URL's, else none)
  --admin URL          the gateway's admin API (default http://127.0.0.1:9901, or MESHGATE_ADMIN_URL)
  --token TOKEN        the admin token (or MESHGATE_ADMIN_TOKEN)
  --json               the explanation as JSON
  -h, --help           show this help`;

interface Explanation {
  request: { method: string; host: string; path: string };
  route: { name: string; service: string; upstreamPath: string; policies: string[]; grpc?: string } | null;
  split?: { version: number; split: string; subset: string; why: string; mirror: { subset: string; percent: number } | null } | null;
  datacenter?: { dc: string; local: boolean; why: string } | null;
  endpoint?: {
    balancer: string;
    likely: string | null;
    why: string;
    endpoints: Array<{ id: string; address: string; dc: string; zone: string; metadata: Record<string, string>; state: string; ewmaMs: number; inFlight: number }>;
  } | null;
  outcome: string;
}

export async function explainCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      header: { type: 'string', short: 'H', multiple: true },
      host: { type: 'string' },
      ...ADMIN_OPTIONS,
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${EXPLAIN_HELP}\n`);
    return EXIT_OK;
  }
  const [a, b] = positionals;
  const method = b !== undefined ? a : 'GET';
  const target = b ?? a;
  if (target === undefined || positionals.length > 2) return usage('give a URL or a path, optionally after a method');
  let host = values.host;
  let path = target;
  if (/^https?:\/\//i.test(target)) {
    const u = new URL(target);
    host ??= u.host;
    path = u.pathname + u.search;
  }
  if (!path.startsWith('/')) return usage(`"${target}" is neither a URL nor a path starting with "/"`);
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const colon = h.indexOf(':');
    if (colon <= 0) return usage(`-H expects 'Name: value', got "${h}"`);
    headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
  }
  return withAdmin('explain', async () => {
    const t = adminTarget(values.admin, values.token);
    const doc = await adminJson<Explanation>(t, '/explain', { method, host, path, headers });
    if (doc === undefined) {
      process.stderr.write(`meshgate explain: ${t.base} has no /explain: it is not a gateway's admin API (sidecars have no routes)\n`);
      return 1;
    }
    process.stdout.write(values.json ? `${JSON.stringify(doc, null, 2)}\n` : render(doc));
    return EXIT_OK;
  });
}

function usage(message: string): number {
  process.stderr.write(`meshgate explain: ${message}\n\n${EXPLAIN_HELP}\n`);
  return EXIT_USAGE;
}

function render(d: Explanation): string {
  const lines = [`${d.request.method} ${d.request.host}${d.request.path}`];
  const row = (k: string, v: string) => lines.push(`${k.padEnd(11)}${v}`);
  if (d.route === null) {
    row('route', 'none matches');
    row('outcome', d.outcome);
    return `${lines.join('\n')}\n`;
  }
  row('route', `${d.route.name} → service ${d.route.service}, upstream path ${d.route.upstreamPath}${d.route.grpc ? ` (${d.route.grpc})` : ''}`);
  row('policies', d.route.policies.length ? d.route.policies.join(' → ') : 'none');
  row('split', d.split ? `v${d.split.version} (${d.split.split}): subset ${d.split.subset}, ${d.split.why}${d.split.mirror ? `; ${d.split.mirror.percent}% mirrored to ${d.split.mirror.subset}` : ''}` : 'none: all endpoints of the service');
  if (d.datacenter) row('datacenter', `${d.datacenter.dc}${d.datacenter.local ? ' (this one)' : ''}: ${d.datacenter.why}`);
  if (d.endpoint) {
    row('endpoint', `${d.endpoint.likely ?? '-'}: ${d.endpoint.why}`);
    if (d.endpoint.endpoints.length > 0) {
      lines.push(
        table([
          ['ENDPOINT', 'ADDRESS', 'DC', 'ZONE', 'STATE', 'EWMA', 'IN-FLIGHT', 'METADATA'],
          ...d.endpoint.endpoints.map((e) => [e.id, e.address, e.dc, e.zone || '-', e.state, `${e.ewmaMs.toFixed(1)} ms`, String(e.inFlight), Object.entries(e.metadata).map(([k, v]) => `${k}=${v}`).join(',') || '-']),
        ], '           '),
      );
    }
  }
  row('outcome', d.outcome);
  return `${lines.join('\n')}\n`;
}
