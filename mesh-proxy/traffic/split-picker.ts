// A split compiled for the request path: match rules with their names lower-cased once, weights
// as a cumulative table; choosing a subset reads the forwarded headers and allocates nothing.
import type { Endpoint } from '../discovery/endpoint.ts';
import type { TrafficSplit } from './split.ts';

interface Rule {
  readonly header: boolean;
  readonly name: string;
  readonly value: string;
  readonly subset: string;
}

export class CompiledSplit {
  readonly split: TrafficSplit;
  readonly subsets: readonly string[];
  readonly #cumulative: Float64Array;
  readonly #total: number;
  readonly #rules: readonly Rule[];
  /** Per endpoint list (the cache swaps lists on change): each subset's endpoints. */
  readonly #bySubset = new WeakMap<readonly Endpoint[], Map<string, readonly Endpoint[]>>();

  constructor(split: TrafficSplit) {
    this.split = split;
    this.subsets = Object.keys(split.weights);
    this.#cumulative = new Float64Array(this.subsets.length);
    let sum = 0;
    this.subsets.forEach((s, i) => {
      sum += split.weights[s];
      this.#cumulative[i] = sum;
    });
    this.#total = sum;
    this.#rules = split.match.map((r) =>
      r.header ? { header: true, name: r.header.name.toLowerCase(), value: r.header.value, subset: r.subset } : { header: false, name: r.cookie!.name, value: r.cookie!.value, subset: r.subset },
    );
  }

  /** The subset for a request with these forwarded headers ([name, value, …]); `random` in [0, 1). */
  pick(headers: readonly string[], random: number): string {
    const m = this.matchIndex(headers);
    if (m >= 0) return this.#rules[m].subset;
    const x = random * this.#total;
    const c = this.#cumulative;
    for (let i = 0; i < c.length; i++) if (x < c[i]) return this.subsets[i];
    return this.subsets[this.subsets.length - 1];
  }

  /** The index of the first match rule these headers satisfy, or -1. */
  matchIndex(headers: readonly string[]): number {
    const rules = this.#rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i];
      if (r.header ? headerIs(headers, r.name, r.value) : cookieIs(headers, r.name, r.value)) return i;
    }
    return -1;
  }

  /** The endpoints of `subset` among `all` (memoized per list). */
  endpointsOf(all: readonly Endpoint[], subset: string): readonly Endpoint[] {
    let m = this.#bySubset.get(all);
    if (m === undefined) this.#bySubset.set(all, (m = new Map()));
    let eps = m.get(subset);
    if (eps === undefined) {
      const key = this.split.subsetKey;
      eps = all.filter((ep) => ep.instance.metadata[key] === subset);
      m.set(subset, eps);
    }
    return eps;
  }
}

function headerIs(headers: readonly string[], lowerName: string, value: string): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i];
    if (n.length === lowerName.length && n.toLowerCase() === lowerName && headers[i + 1] === value) return true;
  }
  return false;
}

function cookieIs(headers: readonly string[], name: string, value: string): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i];
    if (n.length !== 6 || n.toLowerCase() !== 'cookie') continue;
    for (const part of headers[i + 1].split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === name && part.slice(eq + 1).trim() === value) return true;
    }
  }
  return false;
}
