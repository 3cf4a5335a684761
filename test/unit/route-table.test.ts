// The edge route table: file-order precedence, segment-aware prefixes, host/method/header matches,
// rewrites, and path normalization before matching.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { buildGatewayConfig } from '../../config/load.ts';
import { compileRoutes, rewritePath, type CompiledRoute, type RouteTable } from '../../gateway/router/route-table.ts';
import { removeDotSegments, splitTarget } from '../../gateway/router/normalize-path.ts';
import { EdgeRouter } from '../../gateway/edge-router.ts';
import { Metrics } from '../../mesh-proxy/observe/metrics.ts';
import type { Exchange } from '../../mesh-proxy/client/exchange.ts';
import type { MeshClient } from '../../mesh-proxy/client/mesh-client.ts';

type RouteInput = { name: string; service?: string; match?: Record<string, unknown>; rewrite?: Record<string, unknown>; timeout?: string };

/** Compiles routes through the real config loader, so defaults are as in production. */
function table(routes: RouteInput[]): RouteTable {
  const withService = routes.map((r) => ({ service: r.name, ...r }));
  const services = Object.fromEntries(withService.map((r) => [r.service, {}]));
  const config = buildGatewayConfig({ services, routes: withService }, 'routes.yaml', {});
  return compileRoutes(config.routes, new Metrics('dc1').requests);
}

function req(headers: IncomingHttpHeaders = {}): IncomingMessage {
  return { headers } as unknown as IncomingMessage;
}

function match(t: RouteTable, path: string, opts: { method?: string; host?: string; headers?: IncomingHttpHeaders } = {}): string | undefined {
  return t.match({ method: opts.method ?? 'GET', host: opts.host ?? 'gw.local', path, req: req(opts.headers) })?.name;
}

function only(routes: RouteInput[]): CompiledRoute {
  return table(routes).routes[0];
}

describe('precedence', () => {
  test('the first matching route in file order wins, not the longest prefix', () => {
    const t = table([
      { name: 'special', match: { pathPrefix: '/catalog/special' } },
      { name: 'catalog', match: { pathPrefix: '/catalog' } },
      { name: 'fallback', match: { pathPrefix: '/' } },
    ]);
    assert.equal(match(t, '/catalog/special/x'), 'special');
    assert.equal(match(t, '/catalog/x'), 'catalog');
    assert.equal(match(t, '/other'), 'fallback');
    assert.equal(match(t, '/'), 'fallback');

    const reversed = table([
      { name: 'catalog', match: { pathPrefix: '/catalog' } },
      { name: 'special', match: { pathPrefix: '/catalog/special' } },
    ]);
    assert.equal(match(reversed, '/catalog/special/x'), 'catalog');
  });

  test('a route that fails any criterion falls through to the next', () => {
    const t = table([
      { name: 'admin-host', match: { host: 'admin.example.com', pathPrefix: '/api' } },
      { name: 'post-only', match: { methods: ['POST'], pathPrefix: '/api' } },
      { name: 'canary', match: { headers: { 'x-canary': '1' }, pathPrefix: '/api' } },
      { name: 'api', match: { pathPrefix: '/api' } },
    ]);
    assert.equal(match(t, '/api/x', { host: 'admin.example.com' }), 'admin-host');
    assert.equal(match(t, '/api/x', { method: 'POST' }), 'post-only');
    assert.equal(match(t, '/api/x', { headers: { 'x-canary': '1' } }), 'canary');
    assert.equal(match(t, '/api/x'), 'api');
  });

  test('no match → undefined; an empty table matches nothing', () => {
    assert.equal(match(table([{ name: 'a', match: { pathPrefix: '/a' } }]), '/b'), undefined);
    assert.equal(match(table([]), '/'), undefined);
  });

  test('every criterion of one route must hold', () => {
    const t = table([{ name: 'all', match: { host: 'api.example.com', pathPrefix: '/v1', methods: ['PUT'], headers: { 'x-tenant': 'a' } } }]);
    const ok = { host: 'api.example.com', method: 'PUT', headers: { 'x-tenant': 'a' } };
    assert.equal(match(t, '/v1/x', ok), 'all');
    assert.equal(match(t, '/v2/x', ok), undefined);
    assert.equal(match(t, '/v1/x', { ...ok, host: 'b.example.com' }), undefined);
    assert.equal(match(t, '/v1/x', { ...ok, method: 'GET' }), undefined);
    assert.equal(match(t, '/v1/x', { ...ok, headers: { 'x-tenant': 'b' } }), undefined);
  });
});

describe('path prefixes', () => {
  test('match whole segments', () => {
    const t = table([{ name: 'catalog', match: { pathPrefix: '/catalog' } }]);
    for (const p of ['/catalog', '/catalog/', '/catalog/x', '/catalog/x/y']) assert.equal(match(t, p), 'catalog', p);
    for (const p of ['/catalogue', '/catalog-x', '/catalog.json', '/Catalog', '/', '/cat', '/x/catalog']) assert.equal(match(t, p), undefined, p);
  });

  test('a trailing slash in the prefix is ignored', () => {
    const t = table([{ name: 'catalog', match: { pathPrefix: '/catalog/' } }]);
    assert.equal(t.routes[0].prefix, '/catalog');
    for (const p of ['/catalog', '/catalog/', '/catalog/x']) assert.equal(match(t, p), 'catalog', p);
    assert.equal(match(t, '/catalogue'), undefined);
  });

  test('multi-segment prefixes', () => {
    const t = table([{ name: 'v1', match: { pathPrefix: '/api/v1' } }]);
    assert.equal(match(t, '/api/v1'), 'v1');
    assert.equal(match(t, '/api/v1/items'), 'v1');
    assert.equal(match(t, '/api/v10'), undefined);
    assert.equal(match(t, '/api'), undefined);
  });

  test('"/" (the default) matches every path', () => {
    const t = table([{ name: 'all' }]);
    assert.equal(t.routes[0].prefix, '/');
    for (const p of ['/', '/a', '/a/b/c']) assert.equal(match(t, p), 'all');
  });
});

describe('hosts', () => {
  test('exact host, compared lower-case', () => {
    const t = table([{ name: 'api', match: { host: 'API.Example.com' } }]);
    assert.equal(match(t, '/', { host: 'api.example.com' }), 'api');
    for (const h of ['example.com', 'x.api.example.com', 'api.example.co', '']) assert.equal(match(t, '/', { host: h }), undefined, h);
  });

  test('"*.example.com" matches subdomains, not the bare apex', () => {
    const t = table([{ name: 'wild', match: { host: '*.example.com' } }]);
    for (const h of ['a.example.com', 'a.b.example.com', 'www.example.com']) assert.equal(match(t, '/', { host: h }), 'wild', h);
    for (const h of ['example.com', '.example.com', 'aexample.com', 'a.example.com.evil.net', 'a.example.org', '']) {
      assert.equal(match(t, '/', { host: h }), undefined, h);
    }
  });

  test('a list mixes exact and wildcard hosts', () => {
    const t = table([{ name: 'both', match: { host: ['example.com', '*.example.com', 'other.net'] } }]);
    for (const h of ['example.com', 'a.example.com', 'other.net']) assert.equal(match(t, '/', { host: h }), 'both', h);
    for (const h of ['x.other.net', 'example.net']) assert.equal(match(t, '/', { host: h }), undefined, h);
    const r = t.routes[0];
    assert.deepEqual([...(r.exactHosts ?? [])], ['example.com', 'other.net']);
    assert.deepEqual(r.wildcardHosts, ['.example.com']);
  });

  test('only wildcards: no exact host matches', () => {
    const t = table([{ name: 'w', match: { host: ['*.a.com'] } }]);
    assert.equal(match(t, '/', { host: 'a.com' }), undefined);
    assert.equal(match(t, '/', { host: 'x.a.com' }), 'w');
  });

  test('no host criterion matches any host, even none', () => {
    const t = table([{ name: 'any' }]);
    assert.equal(t.routes[0].exactHosts, null);
    assert.equal(t.routes[0].wildcardHosts, null);
    for (const h of ['', 'a', 'b.example.com']) assert.equal(match(t, '/', { host: h }), 'any');
  });
});

describe('methods and headers', () => {
  test('methods', () => {
    const t = table([{ name: 'read', match: { methods: ['GET', 'HEAD'] } }]);
    assert.equal(match(t, '/', { method: 'GET' }), 'read');
    assert.equal(match(t, '/', { method: 'HEAD' }), 'read');
    for (const m of ['POST', 'DELETE', 'OPTIONS', 'get']) assert.equal(match(t, '/', { method: m }), undefined, m);
  });

  test('header names are case-insensitive, values exact', () => {
    const t = table([{ name: 'canary', match: { headers: { 'X-Canary': 'yes', 'x-tenant': 'acme' } } }]);
    assert.deepEqual(t.routes[0].headers, [
      ['x-canary', 'yes'],
      ['x-tenant', 'acme'],
    ]);
    assert.equal(match(t, '/', { headers: { 'x-canary': 'yes', 'x-tenant': 'acme' } }), 'canary');
    assert.equal(match(t, '/', { headers: { 'x-canary': 'Yes', 'x-tenant': 'acme' } }), undefined);
    assert.equal(match(t, '/', { headers: { 'x-canary': 'yes' } }), undefined);
    assert.equal(match(t, '/', { headers: { 'x-canary': 'yes ', 'x-tenant': 'acme' } }), undefined);
    assert.equal(match(t, '/', { headers: {} }), undefined);
  });

  test('a repeated header (array value) matches when one value is equal', () => {
    const t = table([{ name: 'c', match: { headers: { 'set-cookie': 'a=1' } } }]);
    assert.equal(match(t, '/', { headers: { 'set-cookie': ['b=2', 'a=1'] } }), 'c');
    assert.equal(match(t, '/', { headers: { 'set-cookie': ['b=2'] } }), undefined);
  });

  test('an empty expected value matches only a present, empty header', () => {
    const t = table([{ name: 'e', match: { headers: { 'x-flag': '' } } }]);
    assert.equal(match(t, '/', { headers: { 'x-flag': '' } }), 'e');
    assert.equal(match(t, '/', { headers: {} }), undefined);
  });
});

describe('compiled route', () => {
  test('timeout, service and metrics series', () => {
    const t = table([
      { name: 'slow', service: 'catalog', timeout: '8s' },
      { name: 'fast', service: 'catalog', timeout: '250ms' },
      { name: 'plain', service: 'orders' },
    ]);
    assert.deepEqual(
      t.routes.map((r) => [r.name, r.service, r.timeoutMs]),
      [
        ['slow', 'catalog', 8000],
        ['fast', 'catalog', 250],
        ['plain', 'orders', 0],
      ],
    );
    assert.equal(t.routes[0].series.labels.route, 'slow');
    assert.equal(t.routes[0].series.labels.service, 'catalog');
    assert.ok(Object.isFrozen(t.routes) && Object.isFrozen(t.routes[0]));
  });
});

describe('rewritePath', () => {
  test('no rewrite: the path and query pass unchanged', () => {
    const r = only([{ name: 'c', match: { pathPrefix: '/catalog' } }]);
    assert.equal(rewritePath(r, '/catalog/items', ''), '/catalog/items');
    assert.equal(rewritePath(r, '/catalog/items', '?x=1&y=/a'), '/catalog/items?x=1&y=/a');
  });

  test('stripPrefix', () => {
    const r = only([{ name: 'c', match: { pathPrefix: '/catalog' }, rewrite: { stripPrefix: true } }]);
    assert.equal(rewritePath(r, '/catalog/items', ''), '/items');
    assert.equal(rewritePath(r, '/catalog/items', '?x=1'), '/items?x=1');
    assert.equal(rewritePath(r, '/catalog/a/b/', ''), '/a/b/');
    assert.equal(rewritePath(r, '/catalog', ''), '/');
    assert.equal(rewritePath(r, '/catalog', '?x=1'), '/?x=1');
    assert.equal(rewritePath(r, '/catalog/', '?q'), '/?q');
  });

  test('stripPrefix with a trailing-slash prefix and with "/"', () => {
    const r = only([{ name: 'c', match: { pathPrefix: '/catalog/' }, rewrite: { stripPrefix: true } }]);
    assert.equal(rewritePath(r, '/catalog/items', ''), '/items');
    assert.equal(rewritePath(r, '/catalog', ''), '/');
    const root = only([{ name: 'r', rewrite: { stripPrefix: true } }]);
    assert.equal(rewritePath(root, '/items', '?a'), '/items?a');
    assert.equal(rewritePath(root, '/', ''), '/');
  });

  test('rewrite.prefix replaces the matched prefix', () => {
    const r = only([{ name: 'c', match: { pathPrefix: '/catalog' }, rewrite: { prefix: '/v1' } }]);
    assert.equal(rewritePath(r, '/catalog/items', ''), '/v1/items');
    assert.equal(rewritePath(r, '/catalog/items', '?x=1'), '/v1/items?x=1');
    assert.equal(rewritePath(r, '/catalog', ''), '/v1');
    assert.equal(rewritePath(r, '/catalog', '?x=1'), '/v1?x=1');
    assert.equal(rewritePath(r, '/catalog/', ''), '/v1/');
  });

  test('rewrite.prefix with a trailing slash, "/" and a root route', () => {
    const slash = only([{ name: 'c', match: { pathPrefix: '/catalog' }, rewrite: { prefix: '/v1/' } }]);
    assert.equal(rewritePath(slash, '/catalog/items', ''), '/v1/items');
    assert.equal(rewritePath(slash, '/catalog', ''), '/v1');
    const toRoot = only([{ name: 'c', match: { pathPrefix: '/catalog' }, rewrite: { prefix: '/' } }]);
    assert.equal(rewritePath(toRoot, '/catalog/items', '?q=1'), '/items?q=1');
    assert.equal(rewritePath(toRoot, '/catalog', ''), '/');
    const fromRoot = only([{ name: 'r', rewrite: { prefix: '/api' } }]);
    assert.equal(rewritePath(fromRoot, '/items', ''), '/api/items');
    assert.equal(rewritePath(fromRoot, '/', '?x'), '/api/?x');
  });

  test('rewrite.prefix together with stripPrefix', () => {
    const r = only([{ name: 'c', match: { pathPrefix: '/catalog' }, rewrite: { stripPrefix: true, prefix: '/v2' } }]);
    assert.equal(rewritePath(r, '/catalog/items', '?a=b'), '/v2/items?a=b');
  });
});

describe('path normalization', () => {
  test('splitTarget separates the query at the first "?"', () => {
    assert.deepEqual(splitTarget('/a/b?x=1&y=2'), { path: '/a/b', query: '?x=1&y=2' });
    assert.deepEqual(splitTarget('/a/b'), { path: '/a/b', query: '' });
    assert.deepEqual(splitTarget('/a?'), { path: '/a', query: '?' });
    assert.deepEqual(splitTarget('/a?b?c'), { path: '/a', query: '?b?c' });
    // The query is never normalized.
    assert.deepEqual(splitTarget('/a/b?next=/x/../y//z'), { path: '/a/b', query: '?next=/x/../y//z' });
    assert.deepEqual(splitTarget('/a/../b?x=/./'), { path: '/b', query: '?x=/./' });
  });

  test('dot segments are resolved', () => {
    const cases: Array<[string, string]> = [
      ['/catalog/../admin', '/admin'],
      ['/a/./b', '/a/b'],
      ['/a/b/../c', '/a/c'],
      ['/a/b/../../c', '/c'],
      ['/../../etc/passwd', '/etc/passwd'],
      ['/..', '/'],
      ['/.', '/'],
      ['/./', '/'],
      ['/a/..', '/'],
      ['/a/../', '/'],
      ['/a/b/.', '/a/b/'],
      ['/a/b/..', '/a/'],
      ['/a/b/../', '/a/'],
      ['/catalog/..', '/'],
    ];
    for (const [input, want] of cases) {
      assert.equal(splitTarget(input).path, want, input);
      assert.equal(removeDotSegments(input), want, input);
    }
  });

  test('empty segments collapse ("//x")', () => {
    assert.equal(splitTarget('//x').path, '/x');
    assert.equal(splitTarget('//').path, '/');
    assert.equal(splitTarget('/a//b').path, '/a/b');
    assert.equal(splitTarget('/a///b//').path, '/a/b/');
    assert.equal(splitTarget('//catalog/../admin').path, '/admin');
  });

  test('trailing slashes and dot-like names are kept', () => {
    assert.equal(splitTarget('/a/b/').path, '/a/b/');
    assert.equal(splitTarget('/a/./b/').path, '/a/b/');
    assert.equal(splitTarget('/a/.hidden').path, '/a/.hidden');
    assert.equal(splitTarget('/a/..b').path, '/a/..b');
    assert.equal(splitTarget('/a/...').path, '/a/...');
    assert.equal(splitTarget('/a/b..').path, '/a/b..');
    assert.equal(splitTarget('/').path, '/');
  });

  test('a path needing no normalization is returned as is', () => {
    const p = '/catalog/items/42';
    assert.equal(splitTarget(p).path, p);
    assert.equal(splitTarget('/a.b/c.d').path, '/a.b/c.d');
  });

  test('a prefix cannot be escaped with dot segments', () => {
    const t = table([
      { name: 'catalog', match: { pathPrefix: '/catalog' } },
      { name: 'admin', match: { pathPrefix: '/admin', headers: { 'x-admin': 'secret' } } },
    ]);
    for (const target of ['/catalog/../admin', '/catalog/./../admin/users', '//catalog/../admin']) {
      const { path } = splitTarget(target);
      assert.equal(match(t, path), undefined, target);
    }
    assert.equal(match(t, splitTarget('/admin/../catalog/x').path), 'catalog');
  });

  test('percent-encoded dot segments are resolved too', () => {
    assert.equal(splitTarget('/catalog/%2e%2e/admin').path, '/admin');
    assert.equal(splitTarget('/catalog/%2E%2E/admin').path, '/admin');
    assert.equal(splitTarget('/catalog/.%2e/admin').path, '/admin');
    assert.equal(splitTarget('/a/%2e/b').path, '/a/b');
  });
});

// ---- EdgeRouter: the glue that uses the table for each exchange ----------------------------------

interface FakeExchange {
  req: { url: string; method: string; headers: IncomingHttpHeaders };
  host: string;
  service: string;
  route: string;
  path: string;
  timeoutMs: number;
  series: unknown;
  failed?: { code: string; message: string };
  fail(code: string, message: string): void;
}

function exchange(url: string, host: string, method = 'GET', headers: IncomingHttpHeaders = {}): FakeExchange {
  return {
    req: { url, method, headers: { host, ...headers } },
    host,
    service: '',
    route: '',
    path: url,
    timeoutMs: 0,
    series: undefined,
    fail(code, message) {
      this.failed = { code, message };
    },
  };
}

function edge(routes: RouteInput[]): { router: EdgeRouter; forwarded: FakeExchange[] } {
  const forwarded: FakeExchange[] = [];
  const client = { forward: (ex: FakeExchange) => forwarded.push(ex) } as unknown as MeshClient;
  return { router: new EdgeRouter(table(routes), client), forwarded };
}

describe('EdgeRouter', () => {
  const routes: RouteInput[] = [
    { name: 'catalog', service: 'catalog', match: { pathPrefix: '/catalog', host: 'api.example.com' }, rewrite: { stripPrefix: true }, timeout: '3s' },
    { name: 'orders', service: 'orders', match: { pathPrefix: '/orders' } },
  ];

  test('normalizes, matches (host without port, lower-case) and rewrites', () => {
    const { router, forwarded } = edge(routes);
    const ex = exchange('/catalog/./items/../items/42?x=1', 'API.example.com:8080');
    router.route(ex as unknown as Exchange);
    assert.equal(ex.failed, undefined);
    assert.deepEqual(forwarded, [ex]);
    assert.equal(ex.service, 'catalog');
    assert.equal(ex.route, 'catalog');
    assert.equal(ex.path, '/items/42?x=1');
    assert.equal(ex.timeoutMs, 3000);
    assert.ok(ex.series);
  });

  test('no route → NO_ROUTE, nothing forwarded', () => {
    const { router, forwarded } = edge(routes);
    const ex = exchange('/catalog/../admin', 'api.example.com');
    router.route(ex as unknown as Exchange);
    assert.equal(ex.failed?.code, 'NO_ROUTE');
    assert.match(ex.failed?.message ?? '', /GET api\.example\.com\/admin/);
    assert.equal(forwarded.length, 0);
  });

  test('a target that is neither a path nor an absolute URL → BAD_REQUEST', () => {
    const { router, forwarded } = edge(routes);
    for (const target of ['*', 'catalog/x', 'ftp://a/b']) {
      const ex = exchange(target, 'api.example.com', 'OPTIONS');
      router.route(ex as unknown as Exchange);
      assert.equal(ex.failed?.code, 'BAD_REQUEST', target);
    }
    assert.equal(forwarded.length, 0);
  });

  test('an absolute-form target routes by its path', () => {
    const { router, forwarded } = edge(routes);
    const ex = exchange('http://gw.local/orders/7?y=2', 'gw.local');
    router.route(ex as unknown as Exchange);
    assert.equal(ex.failed, undefined);
    assert.equal(forwarded.length, 1);
    assert.equal(ex.service, 'orders');
    assert.equal(ex.path, '/orders/7?y=2');
  });

  test('an absolute-form target routes by its own host, not the Host header (RFC 9112 §3.2.2)', () => {
    const { router } = edge(routes);
    const ex = exchange('http://api.example.com/catalog/items', 'other.example.net');
    router.route(ex as unknown as Exchange);
    assert.equal(ex.failed, undefined, ex.failed?.message);
    assert.equal(ex.service, 'catalog');
  });
});
