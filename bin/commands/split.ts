// `meshgate split`: changes and shows traffic splits through a running proxy's admin API; the proxy
// stores them, and every gateway and sidecar sharing its store applies them.
import { parseArgs } from 'node:util';
import { EXIT_OK, EXIT_USAGE } from '../lifecycle.ts';
import { describeSplit, parseWeights, SplitError, type MatchRule, type TrafficSplit } from '../../mesh-proxy/traffic/split.ts';
import { AdminError, adminJson, adminTarget, table } from './admin-client.ts';
import { request } from 'undici';

export const SPLIT_HELP = `Usage: meshgate split set SERVICE SUBSET=WEIGHT... [--by KEY] [--match SUBSET@header:NAME=VALUE]...
                          [--match SUBSET@cookie:NAME=VALUE]... [--mirror SUBSET:PERCENT] [--expect-version N]
       meshgate split show [SERVICE] [--json]
       meshgate split clear SERVICE

Traffic splits share a service's requests among its subsets: instances grouped by a metadata key
(node.metadata, "version" by default). Match rules go first (e.g. canary users by header or cookie),
then the weights. Splits are kept in the store, versioned, and applied by every gateway and sidecar
that shares it within a moment, without a restart.

  set     meshgate split set catalog v1=90 v2=10
          meshgate split set catalog v1=100 v2=0 --match v2@header:x-canary=always --mirror v2:5
  show    the splits the proxy applies now (all, or one service)
  clear   removes a service's split: all its endpoints share its traffic again

Options:
  --by KEY               the metadata key naming subsets (default: version)
  --match RULE           SUBSET@header:NAME=VALUE or SUBSET@cookie:NAME=VALUE; first match wins
  --mirror SUBSET:PCT    also send a copy of PCT% of requests to SUBSET (responses discarded)
  --expect-version N     change it only if it is at version N (0: none yet); 409 otherwise
  --admin URL            the proxy's admin API (default http://127.0.0.1:9901, or MESHGATE_ADMIN_URL)
  --token TOKEN          the admin token (or MESHGATE_ADMIN_TOKEN)
  --json                 show: JSON instead of a table
  -h, --help             show this help`;

function parseMatch(rule: string): MatchRule {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)@(header|cookie):([^=]+)=(.*)$/.exec(rule);
  if (!m) throw new SplitError('SPLIT_INVALID', `--match: expected SUBSET@header:NAME=VALUE or SUBSET@cookie:NAME=VALUE, got "${rule}"`);
  return { [m[2]]: { name: m[3], value: m[4] }, subset: m[1] } as MatchRule;
}

function parseMirror(v: string): { subset: string; percent: number } {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*):(\d+(?:\.\d+)?)%?$/.exec(v);
  if (!m) throw new SplitError('SPLIT_INVALID', `--mirror: expected SUBSET:PERCENT (e.g. v2:5), got "${v}"`);
  return { subset: m[1], percent: Number(m[2]) };
}

export async function splitCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      by: { type: 'string' },
      match: { type: 'string', multiple: true },
      mirror: { type: 'string' },
      'expect-version': { type: 'string' },
      admin: { type: 'string' },
      token: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  });
  const [sub, service, ...rest] = positionals;
  if (values.help || sub === undefined) {
    process.stdout.write(`${SPLIT_HELP}\n`);
    return values.help ? EXIT_OK : EXIT_USAGE;
  }
  const t = adminTarget(values.admin, values.token);
  try {
    if (sub === 'set') {
      if (!service || rest.length === 0) return usage('split set needs a service and at least one SUBSET=WEIGHT');
      const body: Record<string, unknown> = { weights: parseWeights(rest), match: (values.match ?? []).map(parseMatch) };
      if (values.by) body.subsetKey = values.by;
      if (values.mirror) body.mirror = parseMirror(values.mirror);
      if (values['expect-version'] !== undefined) body.expectVersion = Number(values['expect-version']);
      const stored = await put(t, service, body);
      process.stdout.write(`${service}: version ${stored.version}: ${describeSplit(stored)}\n`);
      return EXIT_OK;
    }
    if (sub === 'show') {
      const doc = service ? await adminJson<TrafficSplit>(t, `/splits/${encodeURIComponent(service)}`) : await adminJson<{ splits: TrafficSplit[] }>(t, '/splits');
      const list = doc === undefined ? [] : 'splits' in doc ? doc.splits : [doc];
      if (values.json) process.stdout.write(`${JSON.stringify(service ? (list[0] ?? null) : list, null, 2)}\n`);
      else if (list.length === 0) process.stdout.write(service ? `${service} has no traffic split: all its endpoints share its traffic\n` : 'no traffic splits\n');
      else process.stdout.write(`${table([['SERVICE', 'VERSION', 'BY', 'SPLIT', 'UPDATED'], ...list.map((s) => [s.service, String(s.version), s.subsetKey, describeSplit(s), s.updatedAt])], '')}\n`);
      return EXIT_OK;
    }
    if (sub === 'clear') {
      if (!service) return usage('split clear needs a service');
      const res = await send(t, 'DELETE', service);
      process.stdout.write(res === 404 ? `${service} had no traffic split\n` : `${service}: traffic split removed\n`);
      return EXIT_OK;
    }
    return usage(`unknown subcommand "${sub}" (set, show, clear)`);
  } catch (err) {
    if (err instanceof SplitError) return usage(err.message);
    if (err instanceof AdminError) {
      process.stderr.write(`meshgate split: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

function usage(message: string): number {
  process.stderr.write(`meshgate split: ${message}\n\n${SPLIT_HELP}\n`);
  return EXIT_USAGE;
}

async function put(t: ReturnType<typeof adminTarget>, service: string, body: unknown): Promise<TrafficSplit> {
  let res;
  try {
    res = await request(`${t.base}/splits/${encodeURIComponent(service)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', ...(t.token ? { authorization: `Bearer ${t.token}` } : {}) },
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw new AdminError(`cannot reach the admin API at ${t.base} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const doc = (await res.body.json().catch(() => ({}))) as TrafficSplit & { error?: { code: string; message: string } };
  if (res.statusCode === 200) return doc;
  if (res.statusCode === 400 && doc.error) throw new SplitError('SPLIT_INVALID', doc.error.message);
  throw new AdminError(`${t.base} answered ${res.statusCode}${doc.error ? ` ${doc.error.code}: ${doc.error.message}` : ''}`);
}

async function send(t: ReturnType<typeof adminTarget>, method: 'DELETE', service: string): Promise<number> {
  try {
    const res = await request(`${t.base}/splits/${encodeURIComponent(service)}`, { method, headers: t.token ? { authorization: `Bearer ${t.token}` } : {} });
    await res.body.dump();
    if (res.statusCode >= 400 && res.statusCode !== 404) throw new AdminError(`${t.base} answered ${res.statusCode}`);
    return res.statusCode;
  } catch (err) {
    if (err instanceof AdminError) throw err;
    throw new AdminError(`cannot reach the admin API at ${t.base} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}
