// `meshgate split`: changes and shows traffic splits through a running proxy's admin API; the proxy
// stores them, and every gateway and sidecar sharing its store applies them.
import { parseArgs } from 'node:util';
import { EXIT_OK, EXIT_USAGE } from '../lifecycle.ts';
import { describeSplit, parseWeights, SplitError, type MatchRule, type TrafficSplit } from '../../mesh-proxy/traffic/split.ts';
import { ADMIN_OPTIONS, AdminError, adminJson, adminTarget, table, withAdmin } from './admin-client.ts';

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
      ...ADMIN_OPTIONS,
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
  const path = (svc: string) => `/splits/${encodeURIComponent(svc)}`;
  try {
    if (sub === 'set') {
      if (!service || rest.length === 0) return usage('split set needs a service and at least one SUBSET=WEIGHT');
      const body: Record<string, unknown> = { weights: parseWeights(rest), match: (values.match ?? []).map(parseMatch) };
      if (values.by) body.subsetKey = values.by;
      if (values.mirror) body.mirror = parseMirror(values.mirror);
      if (values['expect-version'] !== undefined) body.expectVersion = Number(values['expect-version']);
      return await withAdmin('split', async () => {
        try {
          const stored = (await adminJson<TrafficSplit>(t, path(service), body, 'PUT'))!;
          process.stdout.write(`${service}: version ${stored.version}: ${describeSplit(stored)}\n`);
          return EXIT_OK;
        } catch (err) {
          // The proxy refused the split itself: a usage error, as one the CLI catches first.
          if (err instanceof AdminError && err.status === 400 && err.detail !== undefined) return usage(err.detail);
          throw err;
        }
      });
    }
    if (sub === 'show') {
      return await withAdmin('split', async () => {
        const doc = service ? await adminJson<TrafficSplit>(t, path(service)) : await adminJson<{ splits: TrafficSplit[] }>(t, '/splits');
        const list = doc === undefined ? [] : 'splits' in doc ? doc.splits : [doc];
        if (values.json) process.stdout.write(`${JSON.stringify(service ? (list[0] ?? null) : list, null, 2)}\n`);
        else if (list.length === 0) process.stdout.write(service ? `${service} has no traffic split: all its endpoints share its traffic\n` : 'no traffic splits\n');
        else process.stdout.write(`${table([['SERVICE', 'VERSION', 'BY', 'SPLIT', 'UPDATED'], ...list.map((s) => [s.service, String(s.version), s.subsetKey, describeSplit(s), s.updatedAt])], '')}\n`);
        return EXIT_OK;
      });
    }
    if (sub === 'clear') {
      if (!service) return usage('split clear needs a service');
      return await withAdmin('split', async () => {
        const deleted = await adminJson(t, path(service), undefined, 'DELETE');
        process.stdout.write(deleted === undefined ? `${service} had no traffic split\n` : `${service}: traffic split removed\n`);
        return EXIT_OK;
      });
    }
    return usage(`unknown subcommand "${sub}" (set, show, clear)`);
  } catch (err) {
    if (err instanceof SplitError) return usage(err.message);
    throw err;
  }
}

function usage(message: string): number {
  process.stderr.write(`meshgate split: ${message}\n\n${SPLIT_HELP}\n`);
  return EXIT_USAGE;
}
