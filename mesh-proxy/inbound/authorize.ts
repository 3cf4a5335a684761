// Inbound authorization (linkerd's AuthorizationPolicy, Istio's ALLOW rules): which callers may call
// this service, by verified identity, method and path prefix. Compiled once at start into sets and
// lists; a check is a few lookups. The first rule that matches allows; otherwise `default` decides.
// A bare service name means that service in this proxy's trust domain and namespace; "*" any
// verified mesh identity; a rule without `from` any caller, verified or not.
import type { AuthorizeConfig } from '../../config/schema.ts';
import { spiffeId } from '../identity/spiffe.ts';

interface Rule {
  readonly label: string;
  readonly anyCaller: boolean;
  readonly anyIdentity: boolean;
  readonly ids: ReadonlySet<string>;
  readonly methods: ReadonlySet<string> | undefined;
  readonly paths: readonly string[] | undefined;
}

export interface MeshNames {
  readonly trustDomain: string;
  readonly namespace: string;
}

export class Authorizer {
  readonly #rules: readonly Rule[];
  readonly #allowByDefault: boolean;

  constructor(cfg: AuthorizeConfig, mesh: MeshNames | undefined) {
    this.#allowByDefault = cfg.default === 'allow';
    this.#rules = cfg.allow.map((r, i) => {
      const from = r.from === undefined ? [] : Array.isArray(r.from) ? r.from : [r.from];
      const ids = new Set<string>();
      for (const f of from) {
        if (f === '*' || mesh === undefined) continue; // the loader refuses `from` without mesh
        ids.add(f.startsWith('spiffe://') ? f : spiffeId(mesh.trustDomain, mesh.namespace, f));
      }
      return {
        label: r.name ?? `allow[${i}]`,
        anyCaller: r.from === undefined,
        anyIdentity: from.includes('*'),
        ids,
        methods: r.methods ? new Set(r.methods) : undefined,
        paths: r.paths,
      };
    });
  }

  /** undefined when allowed; otherwise why not (the 403's message). */
  deny(caller: string | undefined, method: string, target: string): string | undefined {
    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    let callerMatched: string | undefined;
    for (const r of this.#rules) {
      if (!r.anyCaller && (caller === undefined || (!r.anyIdentity && !r.ids.has(caller)))) continue;
      callerMatched ??= r.label;
      if (r.methods !== undefined && !r.methods.has(method)) continue;
      if (r.paths !== undefined && !matchesPrefix(r.paths, path)) continue;
      return undefined;
    }
    if (this.#allowByDefault) return undefined;
    const who = caller ?? 'an unauthenticated caller';
    return callerMatched === undefined
      ? `no rule allows ${who} to ${method} ${path} (inbound.authorize.default is deny)`
      : `no rule allows ${who} to ${method} ${path} (rule ${callerMatched} names the caller but not this method and path)`;
  }
}

/**
 * Whole-segment prefixes, as routes match (`/orders` covers `/orders` and `/orders/1`, not
 * `/ordersx`). A path with dot segments or encoded dots, slashes or backslashes could mean another
 * path to the app than it seems here, so it matches no path-restricted rule.
 */
function matchesPrefix(prefixes: readonly string[], path: string): boolean {
  if (ambiguous(path)) return false;
  for (const p of prefixes) {
    if (!path.startsWith(p)) continue;
    if (path.length === p.length || p.endsWith('/') || path.charCodeAt(p.length) === 47 /* / */) return true;
  }
  return false;
}

function ambiguous(path: string): boolean {
  if (path.includes('\\')) return true;
  if (path.includes('%')) {
    const lower = path.toLowerCase();
    if (lower.includes('%2e') || lower.includes('%2f') || lower.includes('%5c')) return true;
  }
  for (let i = path.indexOf('/.'); i >= 0; i = path.indexOf('/.', i + 1)) {
    const next = path.charCodeAt(i + 2);
    if (Number.isNaN(next) || next === 47) return true; // "/." or "/./"
    if (next === 46 /* . */ && (i + 3 === path.length || path.charCodeAt(i + 3) === 47)) return true; // "/.." or "/../"
  }
  return false;
}
