// YAML file → environment interpolation and overrides → schema validation (defaults filled) →
// semantic checks → one deep-frozen snapshot. Nothing starts from a file that fails any step.
import { readFile } from 'node:fs/promises';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { ConfigError, type ConfigIssue } from './errors.ts';
import type { GatewayConfig, ProxyConfig } from './schema.ts';
import { validators } from './validators.ts';
import { deepFreeze } from './freeze.ts';
import { parseDuration } from './duration.ts';

const { validateGateway, validateProxy } = validators;

/** Per-host settings operators set in the environment rather than in a shared file. */
const ENV_OVERRIDES: ReadonlyArray<[env: string, path: string[]]> = [
  ['MESHGATE_REDIS_URL', ['store', 'url']],
  ['MESHGATE_ADMIN_TOKEN', ['admin', 'token']],
  ['MESHGATE_DC', ['node', 'dc']],
  ['MESHGATE_ZONE', ['node', 'zone']],
  ['MESHGATE_LOG_LEVEL', ['log', 'level']],
  ['MESHGATE_STATE_DIR', ['discovery', 'stateDir']],
];
const PROXY_ENV_OVERRIDES: ReadonlyArray<[string, string[]]> = [
  ['MESHGATE_INSTANCE', ['node', 'instance']],
  ['MESHGATE_ADVERTISE_ADDRESS', ['node', 'address']],
];

type Env = Record<string, string | undefined>;

export async function loadGatewayConfig(file: string, env: Env = process.env): Promise<GatewayConfig> {
  const raw = await readConfigFile(file);
  return buildGatewayConfig(raw, file, env);
}

export async function loadProxyConfig(file: string, env: Env = process.env): Promise<ProxyConfig> {
  const raw = await readConfigFile(file);
  return buildProxyConfig(raw, file, env);
}

export function buildGatewayConfig(raw: unknown, file: string, env: Env = process.env): GatewayConfig {
  const doc = prepare(raw, file, env, ENV_OVERRIDES);
  const issues = validate(validateGateway, doc, raw);
  issues.push(...semantic(() => checkGateway(doc as GatewayConfig), issues));
  if (issues.length > 0) throw new ConfigError('CONFIG_INVALID', file, issues);
  return deepFreeze(doc as GatewayConfig);
}

export function buildProxyConfig(raw: unknown, file: string, env: Env = process.env): ProxyConfig {
  const doc = prepare(raw, file, env, [...ENV_OVERRIDES, ...PROXY_ENV_OVERRIDES]);
  const issues = validate(validateProxy, doc, raw);
  issues.push(...semantic(() => checkProxy(doc as ProxyConfig), issues));
  if (issues.length > 0) throw new ConfigError('CONFIG_INVALID', file, issues);
  return deepFreeze(doc as ProxyConfig);
}

/**
 * Semantic checks also run on a document the schema rejected (defaults are filled either way), so
 * one pass reports every problem; a check that trips over a malformed part reports nothing more,
 * and nothing is said twice about a path the schema already reported.
 */
function semantic(check: () => ConfigIssue[], schemaIssues: ConfigIssue[]): ConfigIssue[] {
  let found: ConfigIssue[];
  try {
    found = check();
  } catch {
    return [];
  }
  const covered = (p: string) => schemaIssues.some((s) => s.path === p || p.startsWith(`${s.path}.`) || p.startsWith(`${s.path}[`));
  return found.filter((i) => !covered(i.path));
}

async function readConfigFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError('CONFIG_UNREADABLE', file, [{ path: '', message: `cannot read the file (${e.code ?? e.message})` }]);
  }
  try {
    return parseYaml(text, { prettyErrors: true });
  } catch (err) {
    // The yaml library's message already names the line and column.
    const first = (err as Error).message.split('\n')[0].replace(/:$/, '');
    throw new ConfigError('CONFIG_PARSE', file, [{ path: '', message: `not valid YAML: ${first}` }]);
  }
}

function prepare(raw: unknown, file: string, env: Env, overrides: ReadonlyArray<[string, string[]]>): Record<string, unknown> {
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError('CONFIG_INVALID', file, [{ path: '', message: 'expected a YAML mapping at the top level' }]);
  }
  const issues: ConfigIssue[] = [];
  const doc = interpolate(structuredClone(raw), '', env, issues) as Record<string, unknown>;
  if (issues.length > 0) throw new ConfigError('CONFIG_INVALID', file, issues);
  for (const [name, path] of overrides) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    setPath(doc, path, value);
    if (name === 'MESHGATE_REDIS_URL') setPath(doc, ['store', 'kind'], 'redis');
  }
  return doc;
}

const VAR_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces `${VAR}` and `${VAR:-default}` in string values (never in keys). */
function interpolate(node: unknown, path: string, env: Env, issues: ConfigIssue[]): unknown {
  if (typeof node === 'string') {
    return node.replace(VAR_RE, (_m, name: string, def: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (def !== undefined) return def;
      issues.push({ path, message: `environment variable ${name} is not set` });
      return '';
    });
  }
  if (Array.isArray(node)) return node.map((v, i) => interpolate(v, `${path}[${i}]`, env, issues));
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) out[k] = interpolate(v, joinPath(path, k), env, issues);
    return out;
  }
  return node;
}

function setPath(doc: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = doc;
  for (let i = 0; i < path.length - 1; i++) {
    const next = cur[path[i]];
    if (next === null || typeof next !== 'object') cur[path[i]] = {};
    cur = cur[path[i]] as Record<string, unknown>;
  }
  cur[path[path.length - 1]] = value;
}

function validate<T>(fn: ValidateFunction<T>, doc: unknown, raw: unknown): ConfigIssue[] {
  if (fn(doc)) return [];
  if (coerceInterpolated(fn.errors ?? [], doc, raw) && fn(doc)) return [];
  return describeErrors(fn.errors ?? []);
}

/**
 * `port: ${PORT}` interpolates to the string "8081": a value that is one whole `${...}` reference
 * takes the scalar type the schema expects there (integer, number, boolean) when it reads as one.
 */
function coerceInterpolated(errors: ErrorObject[], doc: unknown, raw: unknown): boolean {
  let changed = false;
  for (const e of errors) {
    if (e.keyword !== 'type' || typeof e.data !== 'string') continue;
    const written = atPointer(raw, e.instancePath);
    if (typeof written !== 'string' || !/^\$\{[^}]+\}$/.test(written.trim())) continue;
    const want = String(e.params.type);
    let value: unknown;
    if ((want === 'integer' || want === 'number') && /^-?\d+(\.\d+)?$/.test(e.data)) value = Number(e.data);
    else if (want === 'boolean' && (e.data === 'true' || e.data === 'false')) value = e.data === 'true';
    else continue;
    const cut = e.instancePath.lastIndexOf('/');
    const parent = atPointer(doc, e.instancePath.slice(0, cut)) as Record<string, unknown>;
    parent[unescapePointer(e.instancePath.slice(cut + 1))] = value;
    changed = true;
  }
  return changed;
}

function atPointer(node: unknown, pointer: string): unknown {
  if (pointer === '') return node;
  for (const raw of pointer.slice(1).split('/')) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[unescapePointer(raw)];
  }
  return node;
}

function unescapePointer(seg: string): string {
  return seg.replace(/~1/g, '/').replace(/~0/g, '~');
}

const STATES_VALUE = /^(a|an|one of) /;

/** Turns ajv's errors into one line per problem with a readable path (`routes[2].service`). */
export function describeErrors(errors: ErrorObject[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    // A failed union reports each branch and then itself; the union's own line says it best.
    if (errors.some((o) => o !== e && o.keyword === 'anyOf' && e.instancePath === o.instancePath && e.schemaPath.startsWith(o.schemaPath.replace(/anyOf$/, '')))) {
      continue;
    }
    const base = pointerToPath(e.instancePath);
    let path = base;
    let message: string;
    const expected = (e.parentSchema as { description?: string } | undefined)?.description;
    switch (e.keyword) {
      case 'additionalProperties':
        path = joinPath(base, String(e.params.additionalProperty));
        message = 'unknown key';
        break;
      case 'required':
        path = joinPath(base, String(e.params.missingProperty));
        message = 'is required';
        break;
      case 'type':
        // A description that states the accepted value ("a TCP port (0-65535)") says it best;
        // one that says what the field means does not, and the type does.
        message = `expected ${expected !== undefined && STATES_VALUE.test(expected) ? expected : article(String(e.params.type))}, got ${describeValue(e.data)}`;
        break;
      case 'minimum':
      case 'maximum':
      case 'exclusiveMinimum':
      case 'exclusiveMaximum':
        message = `expected ${expected !== undefined && STATES_VALUE.test(expected) ? expected : `a number ${String(e.params.comparison)} ${String(e.params.limit)}`}, got ${describeValue(e.data)}`;
        break;
      case 'anyOf':
      case 'enum':
      case 'const':
      case 'pattern':
        message = `expected ${expected ?? e.message ?? 'a different value'}, got ${describeValue(e.data)}`;
        break;
      default:
        message = e.message ?? 'is invalid';
    }
    const key = `${path}\u0000${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push({ path, message });
  }
  return issues;
}

function pointerToPath(pointer: string): string {
  if (pointer === '') return '';
  let out = '';
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out = /^\d+$/.test(seg) ? `${out}[${seg}]` : joinPath(out, seg);
  }
  return out;
}

function joinPath(base: string, key: string): string {
  const k = /^[A-Za-z_$][\w$-]*$/.test(key) ? key : JSON.stringify(key);
  if (base === '') return k;
  return k.startsWith('"') ? `${base}[${k}]` : `${base}.${k}`;
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return `${typeof v} ${String(v)}`;
}

function checkStore(store: GatewayConfig['store'], issues: ConfigIssue[]): void {
  if (store.kind === 'redis' && !store.url && !store.sentinels && !store.cluster) {
    issues.push({ path: 'store', message: 'kind redis needs url, sentinels or cluster (or set MESHGATE_REDIS_URL)' });
  }
  if (store.sentinels && !store.sentinelName) issues.push({ path: 'store.sentinelName', message: 'is required with sentinels' });
}

function checkGateway(c: GatewayConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  checkStore(c.store, issues);
  const names = new Set<string>();
  c.routes.forEach((r, i) => {
    if (names.has(r.name)) issues.push({ path: `routes[${i}].name`, message: `duplicate route name "${r.name}"` });
    names.add(r.name);
    if (!Object.hasOwn(c.services, r.service)) {
      const known = Object.keys(c.services);
      issues.push({
        path: `routes[${i}].service`,
        message: `service "${r.service}" is not defined under services (defined: ${known.length ? known.join(', ') : 'none'})`,
      });
    }
  });
  checkAdmin(c.admin, issues);
  checkMesh(c.mesh, issues);
  if (c.listeners.http.redirectToHttps && c.listeners.https === undefined) {
    issues.push({ path: 'listeners.http.redirectToHttps', message: 'needs an https listener (listeners.https) to redirect to' });
  }
  checkDatacenters(c, issues);
  return issues;
}

/** Edges talk across datacenters over mTLS only: peers and the peer listener need the mesh section. */
function checkDatacenters(c: GatewayConfig, issues: ConfigIssue[]): void {
  if (c.listeners.peer !== undefined && c.mesh === undefined) {
    issues.push({ path: 'listeners.peer', message: 'needs the mesh section: other datacenters reach this listener over mTLS' });
  }
  const dcs = c.datacenters;
  if (dcs === undefined) return;
  const seen = new Set<string>();
  dcs.peers.forEach((p, i) => {
    if (p.dc === c.node.dc) issues.push({ path: `datacenters.peers[${i}].dc`, message: `names this gateway's own datacenter (node.dc ${c.node.dc})` });
    if (seen.has(p.dc)) issues.push({ path: `datacenters.peers[${i}].dc`, message: `datacenter "${p.dc}" is listed twice` });
    seen.add(p.dc);
  });
  if (dcs.peers.length > 0 && c.mesh === undefined) {
    issues.push({ path: 'datacenters.peers', message: 'needs the mesh section: requests cross datacenters over mTLS' });
  }
}

function checkProxy(c: ProxyConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  checkStore(c.store, issues);
  checkAdmin(c.admin, issues);
  if (parseDuration(c.registration.heartbeat) >= parseDuration(c.registration.ttl)) {
    issues.push({ path: 'registration.heartbeat', message: `must be shorter than registration.ttl (${c.registration.ttl})` });
  }
  checkMesh(c.mesh, issues);
  checkAuthorize(c, issues);
  return issues;
}

const MESH_SOURCES = ['identity', 'signer', 'caDir'] as const;
const MIN_TTL_MS = 1000;

function checkMesh(mesh: GatewayConfig['mesh'], issues: ConfigIssue[]): void {
  if (mesh === undefined) return;
  const set = MESH_SOURCES.filter((k) => mesh[k] !== undefined);
  if (set.length !== 1) {
    issues.push({ path: 'mesh', message: `needs exactly one of identity, signer or caDir (${set.length === 0 ? 'none is' : `${set.join(' and ')} are`} set)` });
  }
  if (parseDuration(mesh.ttl) < MIN_TTL_MS) issues.push({ path: 'mesh.ttl', message: 'must be at least 1s' });
}

/**
 * Rules that name callers can only be satisfied by a verified client certificate: without mTLS they
 * would silently deny (or, worse, be read as allowing everyone), so such a file is refused.
 */
function checkAuthorize(c: ProxyConfig, issues: ConfigIssue[]): void {
  const authz = c.inbound.authorize;
  if (authz === undefined) return;
  authz.allow.forEach((rule, i) => {
    if (rule.from === undefined) return;
    const path = `inbound.authorize.allow[${i}].from`;
    if (c.mesh === undefined) {
      issues.push({ path, message: 'names callers, which needs mTLS: set the mesh section (without it no caller has a verified identity)' });
      return;
    }
    for (const f of Array.isArray(rule.from) ? rule.from : [rule.from]) {
      if (f === '*' || /^[A-Za-z0-9._-]+$/.test(f)) continue;
      if (!/^spiffe:\/\/[a-z0-9.-]+\/ns\/[A-Za-z0-9._-]+\/sa\/[A-Za-z0-9._-]+$/.test(f)) {
        issues.push({ path, message: `expected a service name, "*" or spiffe://<trust-domain>/ns/<namespace>/sa/<service>, got ${JSON.stringify(f)}` });
      }
    }
  });
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
function checkAdmin(admin: GatewayConfig['admin'], issues: ConfigIssue[]): void {
  if (!LOOPBACK.has(admin.address) && !admin.token) {
    issues.push({ path: 'admin.token', message: `is required when the admin listener binds a non-loopback address (${admin.address})` });
  }
}
