// Config loading: defaults, immutability, every kind of invalid input reported as a ConfigError with
// a readable path and what was expected, semantic checks, environment interpolation and overrides.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { after } from 'node:test';
import { buildGatewayConfig, buildProxyConfig, loadGatewayConfig, loadProxyConfig } from '../../config/load.ts';
import { ConfigError, type ConfigIssue } from '../../config/errors.ts';
import { tempDir, writeConfig } from '../helpers/cli.ts';

type Env = Record<string, string | undefined>;
const NO_ENV: Env = {};
const MIN_PROXY = { node: { service: 'orders' }, app: { port: 3000 } };

/** Runs `fn`, expects a ConfigError and returns it. */
function configError(fn: () => unknown, code = 'CONFIG_INVALID'): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${caught === undefined ? 'no error' : String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.name, 'ConfigError');
  return caught;
}

async function configErrorAsync(p: Promise<unknown>, code: string): Promise<ConfigError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${caught === undefined ? 'no error' : String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

function issueAt(err: ConfigError, path: string): ConfigIssue {
  const found = err.issues.find((i) => i.path === path);
  assert.ok(found, `no issue at "${path}"; issues: ${JSON.stringify(err.issues)}`);
  return found;
}

function gatewayIssues(raw: unknown, env: Env = NO_ENV): ConfigError {
  return configError(() => buildGatewayConfig(raw, 'gw.yaml', env));
}

function proxyIssues(raw: unknown, env: Env = NO_ENV): ConfigError {
  return configError(() => buildProxyConfig(raw, 'proxy.yaml', env));
}

function assertDeepFrozen(value: unknown, path = '$'): void {
  if (value === null || typeof value !== 'object') return;
  assert.ok(Object.isFrozen(value), `${path} is not frozen`);
  for (const [k, v] of Object.entries(value)) assertDeepFrozen(v, `${path}.${k}`);
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function dir(): string {
  const d = tempDir('meshgate-config-');
  dirs.push(d);
  return d;
}

describe('defaults', () => {
  test('an empty gateway document gets every default', () => {
    for (const raw of [{}, null, undefined]) {
      const c = buildGatewayConfig(raw, 'gw.yaml', NO_ENV);
      assert.deepEqual(c, {
        node: { name: 'gateway', dc: 'local', zone: '' },
        store: { kind: 'memory', keyPrefix: 'meshgate:', connectTimeout: '2s', commandTimeout: '1s' },
        listeners: { http: { address: '0.0.0.0', port: 8080, redirectToHttps: false, h2c: true } },
        admin: { address: '127.0.0.1', port: 9901 },
        discovery: { resync: '5s', reconnectGrace: '10s', stateDir: '.meshgate/state' },
        log: { level: 'info', access: true },
        drainTimeout: '10s',
        services: {},
        routes: [],
        plugins: { global: [], services: {} },
        watch: true,
      });
    }
  });

  test('nested defaults are filled inside services and routes', () => {
    const c = buildGatewayConfig(
      {
        services: { catalog: { timeouts: { request: '5s' } } },
        routes: [
          { name: 'catalog', service: 'catalog' },
          { name: 'strip', service: 'catalog', match: { pathPrefix: '/x' }, rewrite: {} },
        ],
      },
      'gw.yaml',
      NO_ENV,
    );
    const policy = c.services.catalog;
    assert.equal(policy.protocol, undefined, 'absent: as each instance registered');
    assert.equal(typeof policy.balancer, 'string');
    assert.equal(policy.timeouts.request, '5s');
    assert.equal(policy.timeouts.connect, '1s');
    assert.deepEqual(policy.pool, { connections: 256, keepAlive: '4s' });
    assert.equal(c.routes[0].name, 'catalog');
    assert.equal(c.routes[0].service, 'catalog');
    assert.deepEqual(c.routes[0].match, { pathPrefix: '/' });
    assert.equal(c.routes[0].rewrite?.stripPrefix ?? false, false);
    assert.deepEqual(c.routes[1].rewrite, { stripPrefix: false });
    assert.equal(c.routes[1].match.pathPrefix, '/x');
    assert.equal(c.routes[0].timeout, undefined);
  });

  test('a minimal proxy document gets every default', () => {
    const c = buildProxyConfig(MIN_PROXY, 'proxy.yaml', NO_ENV);
    assert.deepEqual(c.node, { service: 'orders', dc: 'local', zone: '', metadata: {} });
    assert.deepEqual(c.app, { address: '127.0.0.1', port: 3000, protocol: 'http1' });
    assert.deepEqual(c.inbound, { address: '0.0.0.0', port: 4143 });
    assert.deepEqual(c.outbound, { address: '127.0.0.1', port: 4140 });
    assert.deepEqual(c.admin, { address: '127.0.0.1', port: 4191 });
    assert.deepEqual(c.registration, { ttl: '10s', heartbeat: '3s' });
    assert.equal(c.inboundTimeout, '30s');
    assert.equal(c.drainTimeout, '10s');
    assert.equal(c.store.kind, 'memory');
    assert.deepEqual(c.services, {});
  });

  test('values given in the file are kept', () => {
    const c = buildGatewayConfig(
      { node: { name: 'edge-7', dc: 'eu1' }, listeners: { http: { address: '127.0.0.1', port: 0 } }, log: { level: 'debug', access: false } },
      'gw.yaml',
      NO_ENV,
    );
    assert.equal(c.node.name, 'edge-7');
    assert.equal(c.node.dc, 'eu1');
    assert.deepEqual(c.listeners.http, { address: '127.0.0.1', port: 0, redirectToHttps: false, h2c: true });
    assert.deepEqual(c.log, { level: 'debug', access: false });
  });

  test('the annotated example files load', async () => {
    const gw = await loadGatewayConfig(join(import.meta.dirname, '../../config/gateway.example.yaml'), NO_ENV);
    assert.match(gw.store.url ?? '', /^redis:\/\/127\.0\.0\.1:\d+\/0$/); // the example's default URL, read not dialled
    assert.equal(gw.routes.length, 3);
    assert.equal(gw.routes[2].grpc, true);
    assert.equal(gw.services.inventory.healthCheck?.grpc?.service, '');
    const px = await loadProxyConfig(join(import.meta.dirname, '../../config/proxy.example.yaml'), NO_ENV);
    assert.equal(px.node.service, 'orders');
  });
});

describe('immutability', () => {
  test('the result is deeply frozen', () => {
    const gw = buildGatewayConfig(
      {
        services: { catalog: {} },
        routes: [{ name: 'r', service: 'catalog', match: { host: ['a.example.com'], methods: ['GET'], headers: { 'x-a': '1' } }, rewrite: { prefix: '/v1' } }],
      },
      'gw.yaml',
      NO_ENV,
    );
    assertDeepFrozen(gw);
    assertDeepFrozen(buildProxyConfig({ ...MIN_PROXY, node: { service: 'orders', metadata: { version: 'v1' } } }, 'proxy.yaml', NO_ENV));
    assert.throws(() => {
      (gw.node as { name: string }).name = 'changed';
    }, TypeError);
    assert.throws(() => {
      (gw.routes as unknown[]).push({});
    }, TypeError);
  });

  test('the input document is neither changed nor frozen, and builds are independent', () => {
    const raw = { services: { catalog: {} }, routes: [{ name: 'r', service: 'catalog' }] };
    const copy = structuredClone(raw);
    const a = buildGatewayConfig(raw, 'gw.yaml', NO_ENV);
    assert.deepEqual(raw, copy);
    assert.ok(!Object.isFrozen(raw) && !Object.isFrozen(raw.routes[0]));
    const b = buildGatewayConfig({}, 'gw.yaml', NO_ENV);
    const c = buildGatewayConfig({}, 'gw.yaml', NO_ENV);
    // Defaults are fresh objects per build, not shared (and frozen) schema defaults.
    assert.notEqual(b.services, c.services);
    assert.notEqual(b.node, c.node);
    assert.notEqual(a.routes[0].match, b.routes);
  });
});

describe('schema violations', () => {
  test('wrong types name the path and what was expected', () => {
    const err = gatewayIssues({
      listeners: { http: { port: 'http' } },
      node: { name: 5 },
      routes: 'all',
    });
    assert.match(issueAt(err, 'listeners.http.port').message, /^expected a TCP port \(0-65535\), got "http"$/);
    assert.match(issueAt(err, 'node.name').message, /expected a string, got number 5/);
    assert.match(issueAt(err, 'routes').message, /expected an array, got "all"/);
    assert.equal(err.issues.length, 3, JSON.stringify(err.issues));
    assert.match(err.message, /^gw\.yaml: 3 problems\n/);
    assert.match(err.message, /\n {2}- listeners\.http\.port: expected a TCP port/);
    assert.equal(err.file, 'gw.yaml');
  });

  test('a mapping or a list where a scalar belongs', () => {
    const err = gatewayIssues({ drainTimeout: { s: 1 }, node: { dc: ['a'] } });
    assert.match(issueAt(err, 'drainTimeout').message, /got a mapping/);
    assert.match(issueAt(err, 'node.dc').message, /got a list/);
  });

  test('the top level must be a mapping', () => {
    for (const raw of [[], 'text', 42]) {
      const err = gatewayIssues(raw);
      assert.equal(err.issues.length, 1);
      assert.equal(err.issues[0].path, '');
      assert.match(err.issues[0].message, /mapping/);
    }
  });

  test('array indexes appear in the path', () => {
    const err = gatewayIssues({
      services: { a: {} },
      routes: [
        { name: 'ok', service: 'a' },
        { name: 'ok2', service: 'a' },
        { name: 'bad', service: 'not a name!' },
      ],
    });
    assert.match(issueAt(err, 'routes[2].service').message, /expected a name of letters, digits/);
    const err2 = gatewayIssues({ services: { a: {} }, routes: [{ name: 'r', service: 'a', match: { methods: ['GET', 'post'] } }] });
    assert.match(issueAt(err2, 'routes[0].match.methods[1]').message, /expected an upper-case HTTP method, got "post"/);
  });

  test('unknown keys are rejected at every level', () => {
    const err = gatewayIssues({
      listner: {},
      listeners: { http: { prot: 1 } },
      services: { a: { timeout: '1s' } },
      routes: [{ name: 'r', service: 'a', matchh: {} }],
    });
    for (const p of ['listner', 'listeners.http.prot', 'services.a.timeout', 'routes[0].matchh']) {
      assert.equal(issueAt(err, p).message, 'unknown key');
    }
    const perr = proxyIssues({ ...MIN_PROXY, registration: { ttl: '10s', heartbeet: '1s' } });
    assert.equal(issueAt(perr, 'registration.heartbeet').message, 'unknown key');
  });

  test('missing required keys', () => {
    const err = gatewayIssues({ services: { a: {} }, routes: [{ match: { pathPrefix: '/a' } }] });
    assert.equal(issueAt(err, 'routes[0].name').message, 'is required');
    assert.equal(issueAt(err, 'routes[0].service').message, 'is required');
    const perr = proxyIssues({});
    assert.equal(issueAt(perr, 'node.service').message, 'is required');
    assert.equal(issueAt(perr, 'app.port').message, 'is required');
  });

  test('bad durations', () => {
    for (const bad of ['10 seconds', '5', '1d', '-1s', '', 'ms']) {
      const err = gatewayIssues({ drainTimeout: bad });
      assert.match(issueAt(err, 'drainTimeout').message, /^expected a duration such as 250ms, 5s, 1m, got "/, bad);
    }
    const err = gatewayIssues({ services: { a: { timeouts: { request: 'soon' } } }, routes: [{ name: 'r', service: 'a', timeout: '2 s' }] });
    assert.match(issueAt(err, 'services.a.timeouts.request').message, /expected a duration/);
    assert.match(issueAt(err, 'routes[0].timeout').message, /expected a duration/);
    const perr = proxyIssues({ ...MIN_PROXY, registration: { ttl: 10 } });
    assert.match(issueAt(perr, 'registration.ttl').message, /expected a duration .*got number 10/);
    // Accepted forms.
    for (const ok of ['250ms', '5s', '1m', '2h', '1.5s', '0s']) assert.equal(buildGatewayConfig({ drainTimeout: ok }, 'gw.yaml', NO_ENV).drainTimeout, ok);
  });

  test('bad ports', () => {
    for (const [bad, got] of [
      [70000, 'number 70000'],
      [-1, 'number -1'],
      [80.5, 'number 80.5'],
      ['8080', '"8080"'],
    ] as const) {
      const err = gatewayIssues({ listeners: { http: { port: bad } }, admin: { port: bad } });
      assert.equal(issueAt(err, 'listeners.http.port').message, `expected a TCP port (0-65535), got ${got}`);
      assert.equal(issueAt(err, 'admin.port').message, `expected a TCP port (0-65535), got ${got}`);
    }
    const perr = proxyIssues({ ...MIN_PROXY, inbound: { port: 65536 }, app: { port: 'x' } });
    assert.match(issueAt(perr, 'inbound.port').message, /expected a TCP port/);
    assert.match(issueAt(perr, 'app.port').message, /expected a TCP port/);
    assert.equal(buildGatewayConfig({ listeners: { http: { port: 65535 } } }, 'gw.yaml', NO_ENV).listeners.http.port, 65535);
  });

  test('a union reports one line saying what it accepts', () => {
    const err = gatewayIssues({ store: { kind: 'etcd' } });
    assert.deepEqual(err.issues, [{ path: 'store.kind', message: 'expected memory or redis, got "etcd"' }]);
    const err2 = gatewayIssues({ services: { a: {} }, routes: [{ name: 'r', service: 'a', match: { host: 5 } }] });
    assert.deepEqual(err2.issues, [{ path: 'routes[0].match.host', message: 'expected a host name, "*.example.com", or a list of them, got number 5' }]);
  });

  test('a redis url must be redis:// or rediss://', () => {
    const err = gatewayIssues({ store: { kind: 'redis', url: 'http://127.0.0.1:1' } });
    assert.match(issueAt(err, 'store.url').message, /expected a redis:\/\/ or rediss:\/\/ URL/);
  });

  test('admin token shorter than 16 characters', () => {
    const err = gatewayIssues({ admin: { token: 'short' } });
    assert.match(issueAt(err, 'admin.token').message, /16/);
  });

  test('an invalid log level names the accepted levels', () => {
    const err = gatewayIssues({ log: { level: 'loud' } });
    const msg = issueAt(err, 'log.level').message;
    assert.match(msg, /got "loud"/);
    assert.match(msg, /info/);
    assert.match(msg, /debug/);
    assert.doesNotMatch(msg, /anyOf/);
  });

  test('a wrong type for a field whose description is not a type still says what was expected', () => {
    const access = issueAt(gatewayIssues({ log: { access: 'yes' } }), 'log.access').message;
    assert.match(access, /boolean|true or false/, access);
    const stateDir = issueAt(gatewayIssues({ discovery: { stateDir: 5 } }), 'discovery.stateDir').message;
    assert.match(stateDir, /string|path/, stateDir);
    const conns = issueAt(gatewayIssues({ services: { a: { pool: { connections: 0 } } } }), 'services.a.pool.connections').message;
    assert.match(conns, /1/, conns);
  });

  test('an invalid app protocol names the accepted protocol', () => {
    const err = proxyIssues({ ...MIN_PROXY, app: { port: 3000, protocol: 'h3' } });
    const msg = issueAt(err, 'app.protocol').message;
    assert.match(msg, /http1/);
    assert.match(msg, /h2c/);
    assert.doesNotMatch(msg, /constant/);
  });

  test('a service name that is not a valid name is rejected', () => {
    const err = gatewayIssues({ services: { 'bad name!': {} } });
    assert.ok(err.issues.some((i) => i.path.startsWith('services')), JSON.stringify(err.issues));
    // Its policy is not validated either: this must not load.
    gatewayIssues({ services: { 'bad name!': { pool: { connections: 'lots' } } } });
  });
});

describe('semantic checks', () => {
  test('a route naming an undefined service lists the defined ones', () => {
    const err = gatewayIssues({
      services: { catalog: {}, orders: {} },
      routes: [
        { name: 'a', service: 'catalog' },
        { name: 'b', service: 'order' },
      ],
    });
    assert.deepEqual(err.issues, [{ path: 'routes[1].service', message: 'service "order" is not defined under services (defined: catalog, orders)' }]);
    assert.equal(err.message, 'gw.yaml: routes[1].service: service "order" is not defined under services (defined: catalog, orders)');
    const none = gatewayIssues({ routes: [{ name: 'a', service: 'catalog' }] });
    assert.match(issueAt(none, 'routes[0].service').message, /\(defined: none\)/);
  });

  test('a route service named like an inherited property is still undefined', () => {
    const err = gatewayIssues({ routes: [{ name: 'a', service: 'constructor' }] });
    assert.match(issueAt(err, 'routes[0].service').message, /not defined/);
  });

  test('duplicate route names', () => {
    const err = gatewayIssues({
      services: { a: {} },
      routes: [
        { name: 'r1', service: 'a' },
        { name: 'r2', service: 'a' },
        { name: 'r1', service: 'a' },
      ],
    });
    assert.deepEqual(err.issues, [{ path: 'routes[2].name', message: 'duplicate route name "r1"' }]);
  });

  test('store kind redis needs url, sentinels or cluster', () => {
    const err = gatewayIssues({ store: { kind: 'redis' } });
    assert.match(issueAt(err, 'store').message, /kind redis needs url, sentinels or cluster/);
    const perr = proxyIssues({ ...MIN_PROXY, store: { kind: 'redis' } });
    assert.match(issueAt(perr, 'store').message, /MESHGATE_REDIS_URL/);
    const sentinels = [{ host: '127.0.0.1', port: 26390 }];
    assert.equal(issueAt(gatewayIssues({ store: { kind: 'redis', sentinels } }), 'store.sentinelName').message, 'is required with sentinels');
    buildGatewayConfig({ store: { kind: 'redis', url: 'redis://127.0.0.1:1/0' } }, 'gw.yaml', NO_ENV);
    buildGatewayConfig({ store: { kind: 'redis', sentinels, sentinelName: 'mymaster' } }, 'gw.yaml', NO_ENV);
    buildGatewayConfig({ store: { kind: 'redis', cluster: sentinels } }, 'gw.yaml', NO_ENV);
  });

  test('admin on a non-loopback address needs a token', () => {
    for (const address of ['0.0.0.0', '10.1.2.3', '::']) {
      const err = gatewayIssues({ admin: { address } });
      const msg = issueAt(err, 'admin.token').message;
      assert.match(msg, /required/);
      assert.ok(msg.includes(address), msg);
      buildGatewayConfig({ admin: { address, token: 'x'.repeat(16) } }, 'gw.yaml', NO_ENV);
    }
    for (const address of ['127.0.0.1', '::1', 'localhost']) buildGatewayConfig({ admin: { address } }, 'gw.yaml', NO_ENV);
    const perr = proxyIssues({ ...MIN_PROXY, admin: { address: '0.0.0.0' } });
    issueAt(perr, 'admin.token');
  });

  test('proxy heartbeat must be shorter than ttl', () => {
    for (const [ttl, heartbeat] of [
      ['10s', '10s'],
      ['10s', '11s'],
      ['30s', '1m'],
      ['1s', '1000ms'],
    ]) {
      const err = proxyIssues({ ...MIN_PROXY, registration: { ttl, heartbeat } });
      assert.deepEqual(err.issues, [{ path: 'registration.heartbeat', message: `must be shorter than registration.ttl (${ttl})` }]);
    }
    // Against the default ttl (10s).
    issueAt(proxyIssues({ ...MIN_PROXY, registration: { heartbeat: '15s' } }), 'registration.heartbeat');
    assert.equal(buildProxyConfig({ ...MIN_PROXY, registration: { ttl: '1s', heartbeat: '999ms' } }, 'proxy.yaml', NO_ENV).registration.heartbeat, '999ms');
  });

  test('several semantic problems are reported together', () => {
    const err = gatewayIssues({ admin: { address: '0.0.0.0' }, store: { kind: 'redis' }, routes: [{ name: 'a', service: 'x' }] });
    assert.deepEqual(err.issues.map((i) => i.path).sort(), ['admin.token', 'routes[0].service', 'store']);
  });

  test('schema and semantic problems are reported in one pass (as the README shows)', () => {
    const err = gatewayIssues({
      listeners: { http: { port: 'http' } },
      services: { catalog: {}, orders: {} },
      routes: [
        { name: 'a', service: 'catalog' },
        { name: 'b', service: 'order' },
      ],
    });
    issueAt(err, 'listeners.http.port');
    issueAt(err, 'routes[1].service');
  });
});

describe('environment interpolation', () => {
  test('${VAR} and ${VAR:-default} in string values', () => {
    const c = buildGatewayConfig(
      {
        node: { name: 'edge-${NODE_NUM}', dc: '${DC:-eu1}', zone: '${ZONE:-z1}' },
        store: { kind: 'redis', url: 'redis://${REDIS_HOST}:${REDIS_PORT:-6380}/0' },
        services: { catalog: {} },
        routes: [{ name: 'r', service: 'catalog', match: { pathPrefix: '/${PREFIX:-api}' } }],
      },
      'gw.yaml',
      { NODE_NUM: '3', ZONE: 'z9', REDIS_HOST: '10.0.0.5' },
    );
    assert.equal(c.node.name, 'edge-3');
    assert.equal(c.node.dc, 'eu1');
    assert.equal(c.node.zone, 'z9');
    assert.equal(c.store.url, 'redis://10.0.0.5:6380/0');
    assert.equal(c.routes[0].match.pathPrefix, '/api');
  });

  test('an empty variable counts as unset; an empty default is allowed', () => {
    const c = buildGatewayConfig({ node: { dc: '${DC:-fallback}', zone: '${ZONE:-}' } }, 'gw.yaml', { DC: '', ZONE: '' });
    assert.equal(c.node.dc, 'fallback');
    assert.equal(c.node.zone, '');
  });

  test('an unset variable without a default is an error at its path', () => {
    const err = gatewayIssues({ store: { kind: 'redis', url: '${REDIS_URL}' }, routes: [{ name: '${R1}', service: 'x' }] });
    assert.deepEqual(err.issues, [
      { path: 'store.url', message: 'environment variable REDIS_URL is not set' },
      { path: 'routes[0].name', message: 'environment variable R1 is not set' },
    ]);
    issueAt(gatewayIssues({ node: { dc: '${EMPTY}' } }, { EMPTY: '' }), 'node.dc');
  });

  test('keys and non-string values are not interpolated', () => {
    const c = buildProxyConfig({ ...MIN_PROXY, node: { service: 'orders', metadata: { '${K}': 'v' } } }, 'proxy.yaml', { K: 'key' });
    assert.deepEqual(c.node.metadata, { '${K}': 'v' });
    assert.equal(buildGatewayConfig({ log: { access: false } }, 'gw.yaml', NO_ENV).log.access, false);
  });

  test('text that is not a variable reference stays as written', () => {
    const c = buildGatewayConfig({ node: { name: '$NAME-{x}-${1BAD}' } }, 'gw.yaml', { NAME: 'n' });
    assert.equal(c.node.name, '$NAME-{x}-${1BAD}');
  });

  test('a port from the environment becomes a number', () => {
    const c = buildGatewayConfig({ listeners: { http: { port: '${PORT}' } } }, 'gw.yaml', { PORT: '8081' });
    assert.equal(c.listeners.http.port, 8081);
  });
});

describe('environment overrides', () => {
  test('MESHGATE_REDIS_URL sets store.kind redis and store.url', () => {
    const c = buildGatewayConfig({ store: { kind: 'memory' } }, 'gw.yaml', { MESHGATE_REDIS_URL: 'redis://10.0.0.1:6380/2' });
    assert.equal(c.store.kind, 'redis');
    assert.equal(c.store.url, 'redis://10.0.0.1:6380/2');
    // Without a store section at all.
    assert.equal(buildProxyConfig(MIN_PROXY, 'proxy.yaml', { MESHGATE_REDIS_URL: 'rediss://h:1' }).store.url, 'rediss://h:1');
    // It satisfies "kind redis needs a url".
    assert.equal(buildGatewayConfig({ store: { kind: 'redis' } }, 'gw.yaml', { MESHGATE_REDIS_URL: 'redis://h:1' }).store.kind, 'redis');
    // An empty value is ignored.
    assert.equal(buildGatewayConfig({}, 'gw.yaml', { MESHGATE_REDIS_URL: '' }).store.kind, 'memory');
    // An invalid value is reported at the path it overrides.
    assert.match(issueAt(gatewayIssues({}, { MESHGATE_REDIS_URL: 'localhost:6390' }), 'store.url').message, /redis:\/\//);
  });

  test('MESHGATE_ADMIN_TOKEN sets admin.token and satisfies a non-loopback admin', () => {
    const token = 'abcdefghijklmnopqrstuvwxyz';
    const c = buildGatewayConfig({ admin: { address: '0.0.0.0', token: 'file-token-0123456789' } }, 'gw.yaml', { MESHGATE_ADMIN_TOKEN: token });
    assert.equal(c.admin.token, token);
    assert.match(issueAt(gatewayIssues({}, { MESHGATE_ADMIN_TOKEN: 'short' }), 'admin.token').message, /16/);
  });

  test('MESHGATE_DC, _ZONE, _LOG_LEVEL and _STATE_DIR', () => {
    const c = buildGatewayConfig({ node: { dc: 'file' } }, 'gw.yaml', {
      MESHGATE_DC: 'eu2',
      MESHGATE_ZONE: 'eu2-b',
      MESHGATE_LOG_LEVEL: 'warn',
      MESHGATE_STATE_DIR: '/var/lib/meshgate',
    });
    assert.equal(c.node.dc, 'eu2');
    assert.equal(c.node.zone, 'eu2-b');
    assert.equal(c.log.level, 'warn');
    assert.equal(c.discovery.stateDir, '/var/lib/meshgate');
  });

  test('MESHGATE_INSTANCE and MESHGATE_ADVERTISE_ADDRESS apply to proxies only', () => {
    const env = { MESHGATE_INSTANCE: 'orders-7', MESHGATE_ADVERTISE_ADDRESS: '10.0.0.7' };
    const p = buildProxyConfig({ ...MIN_PROXY, node: { service: 'orders', instance: 'orders-1' } }, 'proxy.yaml', env);
    assert.equal(p.node.instance, 'orders-7');
    assert.equal(p.node.address, '10.0.0.7');
    // A gateway has no node.instance: the variable must not make its config invalid.
    const g = buildGatewayConfig({}, 'gw.yaml', env);
    assert.equal((g.node as Record<string, unknown>).instance, undefined);
    assert.match(issueAt(proxyIssues(MIN_PROXY, { MESHGATE_INSTANCE: 'bad id!' }), 'node.instance').message, /expected a name/);
  });

  test('the env argument, not process.env, is read', () => {
    const saved = process.env.MESHGATE_DC;
    process.env.MESHGATE_DC = 'from-process';
    try {
      assert.equal(buildGatewayConfig({}, 'gw.yaml', {}).node.dc, 'local');
    } finally {
      if (saved === undefined) delete process.env.MESHGATE_DC;
      else process.env.MESHGATE_DC = saved;
    }
  });
});

describe('loading files', () => {
  test('a YAML file loads, with the env argument applied', async () => {
    const d = dir();
    const file = writeConfig(d, 'gw.yaml', 'node:\n  name: ${NAME:-edge}\nservices:\n  catalog: {}\nroutes:\n  - name: c\n    service: catalog\n');
    const c = await loadGatewayConfig(file, { NAME: 'edge-9' });
    assert.equal(c.node.name, 'edge-9');
    assert.equal(c.routes[0].service, 'catalog');
    assertDeepFrozen(c);
  });

  test('an empty file is an empty document', async () => {
    const file = writeConfig(dir(), 'empty.yaml', '');
    assert.equal((await loadGatewayConfig(file, NO_ENV)).listeners.http.port, 8080);
  });

  test('an unreadable file → CONFIG_UNREADABLE naming the file', async () => {
    const d = dir();
    const missing = join(d, 'missing.yaml');
    const err = await configErrorAsync(loadGatewayConfig(missing, NO_ENV), 'CONFIG_UNREADABLE');
    assert.equal(err.file, missing);
    assert.deepEqual(err.issues, [{ path: '', message: 'cannot read the file (ENOENT)' }]);
    assert.equal(err.message, `${missing}: cannot read the file (ENOENT)`);
    const isDir = await configErrorAsync(loadProxyConfig(d, NO_ENV), 'CONFIG_UNREADABLE');
    assert.match(isDir.message, /EISDIR/);
  });

  test('invalid YAML → CONFIG_PARSE naming the line', async () => {
    const d = dir();
    const cases: Array<[string, number]> = [
      ['routes:\n  - name: a\n   service: nope\n', 3],
      ['node:\n  name: a\n  name: b\n', 3],
      ['listeners: { http: { port: 80 }\n', 2],
      ['a: b\n\tc: d\n', 2],
    ];
    for (const [text, line] of cases) {
      const file = writeConfig(d, `bad-${line}.yaml`, text);
      const err = await configErrorAsync(loadGatewayConfig(file, NO_ENV), 'CONFIG_PARSE');
      assert.equal(err.issues.length, 1);
      assert.match(err.issues[0].message, /^not valid YAML: /);
      assert.match(err.message, new RegExp(`line ${line}\\b`), `${JSON.stringify(text)} → ${err.message}`);
      assert.ok(err.message.startsWith(`${file}: `), err.message);
      assert.ok(!err.message.includes('\n'), 'one line');
    }
  });

  test('a file that parses but is invalid → CONFIG_INVALID naming the file', async () => {
    const file = writeConfig(dir(), 'gw.yaml', { listeners: { http: { port: 'x' } } });
    const err = await configErrorAsync(loadGatewayConfig(file, NO_ENV), 'CONFIG_INVALID');
    assert.equal(err.message, `${file}: listeners.http.port: expected a TCP port (0-65535), got "x"`);
    const perr = await configErrorAsync(loadProxyConfig(writeConfig(dir(), 'p.yaml', '- a\n- b\n'), NO_ENV), 'CONFIG_INVALID');
    assert.match(perr.message, /mapping/);
  });
});
