// A traffic split: how a service's requests are shared among its subsets (instances grouped by a
// metadata key, `version` by default) by weight, after match rules (a header or cookie value
// sends a request to a named subset, e.g. canary users), optionally mirroring a share to a subset.
// Splits live in the store, versioned; every proxy applies the current one (split-table.ts).

export interface MatchRule {
  readonly header?: { readonly name: string; readonly value: string };
  readonly cookie?: { readonly name: string; readonly value: string };
  readonly subset: string;
}

export interface SplitSpec {
  /** The instance metadata key whose value names an instance's subset. */
  readonly subsetKey: string;
  /** subset → weight (integers; their sum is the whole). */
  readonly weights: Readonly<Record<string, number>>;
  /** Tried in order; the first that matches picks the subset. */
  readonly match: readonly MatchRule[];
  /** A copy of this share of requests goes to `subset` too; its responses are discarded. */
  readonly mirror?: { readonly subset: string; readonly percent: number };
}

export interface TrafficSplit extends SplitSpec {
  readonly service: string;
  /** Incremented by the store on every change of this service's split. */
  readonly version: number;
  readonly updatedAt: string;
}

export type SplitErrorCode = 'SPLIT_INVALID' | 'SPLIT_CONFLICT' | 'SPLIT_NOT_FOUND';

export class SplitError extends Error {
  readonly code: SplitErrorCode;
  constructor(code: SplitErrorCode, message: string) {
    super(message);
    this.name = 'SplitError';
    this.code = code;
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Checks a split as a user sent it (admin API, CLI); every problem is named. */
export function parseSplitSpec(input: unknown): SplitSpec {
  const problems: string[] = [];
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new SplitError('SPLIT_INVALID', 'a split is a JSON object: {"weights": {"v1": 90, "v2": 10}, ...}');
  const o = input as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['subsetKey', 'weights', 'match', 'mirror', 'expectVersion', 'service', 'version', 'updatedAt'].includes(k)) problems.push(`unknown field "${k}"`);
  const subsetKey = o.subsetKey === undefined ? 'version' : o.subsetKey;
  if (typeof subsetKey !== 'string' || !NAME.test(subsetKey)) problems.push('subsetKey: expected a metadata key of letters, digits, ".", "_" or "-"');
  const weights: Record<string, number> = {};
  if (o.weights === null || typeof o.weights !== 'object' || Array.isArray(o.weights)) problems.push('weights: expected an object of subset → weight, e.g. {"v1": 90, "v2": 10}');
  else {
    let total = 0;
    for (const [subset, w] of Object.entries(o.weights as Record<string, unknown>)) {
      if (!NAME.test(subset)) problems.push(`weights: "${subset}" is not a subset name (letters, digits, ".", "_" or "-")`);
      if (typeof w !== 'number' || !Number.isInteger(w) || w < 0 || w > 1_000_000) problems.push(`weights.${subset}: expected a whole number from 0 to 1000000, got ${JSON.stringify(w)}`);
      else {
        weights[subset] = w;
        total += w;
      }
    }
    if (Object.keys(weights).length > 0 && total === 0) problems.push('weights: at least one weight must be above 0');
    if (Object.keys(o.weights as object).length === 0) problems.push('weights: name at least one subset');
  }
  const match: MatchRule[] = [];
  if (o.match !== undefined) {
    if (!Array.isArray(o.match)) problems.push('match: expected a list of rules like {"header": {"name": "x-canary", "value": "1"}, "subset": "v2"}');
    else {
      o.match.forEach((r: unknown, i: number) => {
        const rule = r as Record<string, unknown> | null;
        const at = `match[${i}]`;
        if (rule === null || typeof rule !== 'object') return void problems.push(`${at}: expected an object`);
        const kinds = ['header', 'cookie'].filter((k) => rule[k] !== undefined);
        if (kinds.length !== 1) return void problems.push(`${at}: needs exactly one of header or cookie`);
        const kind = kinds[0] as 'header' | 'cookie';
        const m = rule[kind] as Record<string, unknown>;
        if (m === null || typeof m !== 'object' || typeof m.name !== 'string' || typeof m.value !== 'string' || !TOKEN.test(m.name)) return void problems.push(`${at}.${kind}: expected {"name": <${kind} name>, "value": <exact value>}`);
        if (typeof rule.subset !== 'string' || !NAME.test(rule.subset)) return void problems.push(`${at}.subset: expected a subset name`);
        match.push({ [kind]: { name: kind === 'header' ? m.name.toLowerCase() : m.name, value: m.value }, subset: rule.subset });
      });
    }
  }
  let mirror: SplitSpec['mirror'];
  if (o.mirror !== undefined) {
    const m = o.mirror as Record<string, unknown> | null;
    if (m === null || typeof m !== 'object' || typeof m.subset !== 'string' || !NAME.test(m.subset)) problems.push('mirror: expected {"subset": <name>, "percent": 0-100}');
    else if (typeof m.percent !== 'number' || !(m.percent >= 0 && m.percent <= 100)) problems.push(`mirror.percent: expected a number from 0 to 100, got ${JSON.stringify(m.percent)}`);
    else mirror = { subset: m.subset, percent: m.percent };
  }
  if (problems.length > 0) throw new SplitError('SPLIT_INVALID', problems.join('; '));
  return { subsetKey: subsetKey as string, weights, match, ...(mirror ? { mirror } : {}) };
}

/** "v1=90 v2=10" style arguments → weights. */
export function parseWeights(args: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of args) {
    const eq = a.indexOf('=');
    const w = Number(a.slice(eq + 1));
    if (eq <= 0 || !Number.isInteger(w)) throw new SplitError('SPLIT_INVALID', `expected SUBSET=WEIGHT (e.g. v1=90), got "${a}"`);
    out[a.slice(0, eq)] = w;
  }
  return out;
}

/** A split in one line: "v1=90 v2=10; header x-canary=1 → v2; mirror 5% → v2". */
export function describeSplit(s: SplitSpec): string {
  const parts = [Object.entries(s.weights).map(([k, v]) => `${k}=${v}`).join(' ')];
  for (const r of s.match) parts.push(`${r.header ? `header ${r.header.name}=${r.header.value}` : `cookie ${r.cookie!.name}=${r.cookie!.value}`} → ${r.subset}`);
  if (s.mirror) parts.push(`mirror ${s.mirror.percent}% → ${s.mirror.subset}`);
  return parts.join('; ');
}
