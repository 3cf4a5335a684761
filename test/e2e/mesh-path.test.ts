// End to end through real processes: client → edge gateway → catalog/orders sidecar inbound → app,
// and east-west: orders app → its sidecar's outbound (Host: catalog) → catalog sidecar → catalog app.
// Discovery goes through a real redis-server started for this file.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MeshgateProcess, tempDir, writeConfig } from '../helpers/cli.ts';
import { cleanEnv } from '../helpers/env.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { RedisServer } from '../helpers/redis-server.ts';
import { steadyLoad } from '../helpers/load.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';

// ---------------------------------------------------------------------------------------------
// Small helpers (local to this file)

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  text: string;
}

interface SendOptions {
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: Buffer | string;
  timeoutMs?: number;
}

/** One request on a fresh connection (agent: false), so no socket outlives the test. */
function send(url: string, opts: SendOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        clearTimeout(timer);
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body, text: body.toString('utf8') });
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no response from ${url} within ${opts.timeoutMs ?? 20_000} ms`)), opts.timeoutMs ?? 20_000);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(opts.body);
  });
}

function json<T = any>(r: Reply): T {
  try {
    return JSON.parse(r.text) as T;
  } catch {
    throw new Error(`expected a JSON body, got ${r.status}: ${r.text.slice(0, 300)}`);
  }
}

/** All values of a header in the raw list (case-insensitive). */
function rawValues(r: Reply, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) if (r.rawHeaders[i].toLowerCase() === name) out.push(r.rawHeaders[i + 1]);
  return out;
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (enough of it for meshgate's metrics). */
function parseProm(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    let l: RegExpExecArray | null;
    while ((l = re.exec(m[2] ?? '')) !== null) labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of every sample of `name` whose labels include all of `match`. */
function metric(samples: Sample[], name: string, match: Record<string, string>): number {
  let sum = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}

async function scrape(adminUrl: string): Promise<Sample[]> {
  const r = await send(`${adminUrl}/metrics`);
  assert.equal(r.status, 200, `metrics of ${adminUrl}: ${r.text.slice(0, 200)}`);
  return parseProm(r.text);
}

const TRACEPARENT_RE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
function parseTraceparent(v: unknown): { traceId: string; parentId: string; flags: string } {
  assert.equal(typeof v, 'string', `traceparent should be a string, got ${String(v)}`);
  const m = TRACEPARENT_RE.exec(v as string);
  assert.ok(m, `not a W3C traceparent: ${String(v)}`);
  return { traceId: m[1], parentId: m[2], flags: m[3] };
}


// ---------------------------------------------------------------------------------------------
// The orders app: a plain HTTP server that calls catalog through its sidecar's outbound listener.

interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

interface OrdersApp {
  port: number;
  received: SeenRequest[];
  close(): Promise<void>;
}

function callCatalog(outboundPort: number, path: string, incoming: http.IncomingHttpHeaders): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { host: 'catalog', accept: 'application/json' };
    for (const h of ['x-request-id', 'traceparent']) if (incoming[h]) headers[h] = incoming[h];
    const req = http.request({ host: '127.0.0.1', port: outboundPort, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
        } catch {
          reject(new Error(`catalog answered ${res.statusCode} with a non-JSON body: ${text.slice(0, 200)}`));
        }
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error('catalog timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function startOrdersApp(outboundPort: number): Promise<OrdersApp> {
  const received: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = req.url ?? '/';
      received.push({ method: req.method ?? '', url, headers: req.headers, body });
      const path = url.split('?')[0];

      // East-west: build an order from the catalog, called through the sidecar.
      const order = /^\/orders\/(\d+)$/.exec(path);
      if (req.method === 'GET' && order) {
        callCatalog(outboundPort, `/items?order=${order[1]}`, req.headers).then(
          (catalog) => {
            const out = JSON.stringify({ app: 'orders', order: { id: Number(order[1]) }, headers: req.headers, catalogStatus: catalog.status, catalog: catalog.body });
            res.writeHead(catalog.status === 200 ? 200 : 502, { 'content-type': 'application/json' });
            res.end(out);
          },
          (err: Error) => {
            res.writeHead(502, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ app: 'orders', error: err.message }));
          },
        );
        return;
      }
      // Echo: the exact bytes back, streamed in chunks (no content-length: chunked).
      if (path === '/orders/echo') {
        res.writeHead(req.method === 'POST' ? 201 : 200, {
          'content-type': req.headers['content-type'] ?? 'application/octet-stream',
          'x-received-length': String(body.length),
          'x-received-sha256': createHash('sha256').update(body).digest('hex'),
        });
        let off = 0;
        const step = 64 * 1024;
        const pump = () => {
          while (off < body.length) {
            const chunk = body.subarray(off, off + step);
            off += chunk.length;
            if (!res.write(chunk)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      const status = /^\/orders\/status\/(\d{3})$/.exec(path);
      if (status) {
        res.writeHead(Number(status[1]), { 'content-type': 'text/plain', 'x-app-status': status[1] });
        res.end(`app says ${status[1]}`);
        return;
      }
      if (path === '/orders/headers') {
        res.setHeader('content-type', 'text/plain');
        res.setHeader('x-custom-one', 'first');
        res.setHeader('x-custom-two', 'second');
        res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; Path=/; HttpOnly']);
        // Hop-by-hop: Connection names x-secret, and keep-alive is hop-by-hop by definition.
        res.setHeader('connection', 'x-secret');
        res.setHeader('x-secret', 'must-not-cross');
        res.setHeader('keep-alive', 'timeout=999, max=7');
        res.end('headers');
        return;
      }
      if (path === '/orders/headers-2') {
        // Two Connection header lines (Node sends one line per array element), each naming a field.
        res.setHeader('content-type', 'text/plain');
        res.setHeader('connection', ['x-hop-a', 'x-hop-b']);
        res.setHeader('x-hop-a', 'must-not-cross');
        res.setHeader('x-hop-b', 'must-not-cross');
        res.end('headers-2');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ app: 'orders', method: req.method, url, headers: req.headers }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

// ---------------------------------------------------------------------------------------------

describe('mesh path: gateway → sidecar → app, and east-west through sidecars', () => {
  let redis: RedisServer | undefined;
  let dir = '';
  const procs: MeshgateProcess[] = [];
  const apps: Array<{ close(): Promise<void> }> = [];
  let catalogA: TestApp;
  let catalogB: TestApp;
  let orders: OrdersApp;
  let gateway: MeshgateProcess;
  let gw = ''; // http://127.0.0.1:<gateway listener>
  let gwAdmin = '';
  const catalogInbound: number[] = [];
  const catalogAdmin: string[] = [];
  const catalogProcs: MeshgateProcess[] = [];
  let ordersAdmin = '';

  before(async () => {
    redis = await RedisServer.start();
    dir = tempDir('meshgate-e2e-mesh-');
    const store = { kind: 'redis', url: redis.url };
    const discovery = { resync: '500ms', stateDir: dir };

    catalogA = await startApp('catalog-a');
    catalogB = await startApp('catalog-b');
    apps.push(catalogA, catalogB);
    const ordersOutbound = await freePort();
    orders = await startOrdersApp(ordersOutbound);
    apps.push(orders);

    const sidecar = async (service: string, instance: string, appPort: number, outboundPort?: number) => {
      const [inbound, outbound, admin] = [await freePort(), outboundPort ?? (await freePort()), await freePort()];
      const file = writeConfig(dir, `${instance}.yaml`, {
        node: { service, instance, dc: 'local', zone: 'local-a', metadata: { version: 'v1' } },
        app: { address: '127.0.0.1', port: appPort },
        inbound: { address: '127.0.0.1', port: inbound },
        outbound: { address: '127.0.0.1', port: outbound },
        admin: { address: '127.0.0.1', port: admin },
        store,
        registration: { ttl: '10s', heartbeat: '1s' },
        discovery,
        log: { level: 'warn', access: true },
        drainTimeout: '5s',
      });
      const p = new MeshgateProcess(['proxy', '--config', file], cleanEnv('warn'));
      procs.push(p);
      return { p, inbound, admin: `http://127.0.0.1:${admin}` };
    };

    const cA = await sidecar('catalog', 'catalog-1', catalogA.port);
    const cB = await sidecar('catalog', 'catalog-2', catalogB.port);
    const o = await sidecar('orders', 'orders-1', orders.port, ordersOutbound);
    catalogInbound.push(cA.inbound, cB.inbound);
    catalogAdmin.push(cA.admin, cB.admin);
    catalogProcs.push(cA.p, cB.p);
    ordersAdmin = o.admin;

    const [httpPort, adminPort] = [await freePort(), await freePort()];
    gw = `http://127.0.0.1:${httpPort}`;
    gwAdmin = `http://127.0.0.1:${adminPort}`;
    const gwFile = writeConfig(dir, 'gateway.yaml', {
      node: { name: 'edge-1', dc: 'local' },
      store,
      listeners: { http: { address: '127.0.0.1', port: httpPort } },
      admin: { address: '127.0.0.1', port: adminPort },
      discovery,
      log: { level: 'info', access: true },
      drainTimeout: '5s',
      services: { catalog: { balancer: 'round-robin', timeouts: { request: '5s' } }, orders: {} },
      routes: [
        { name: 'catalog', match: { pathPrefix: '/catalog', methods: ['GET', 'HEAD'] }, rewrite: { stripPrefix: true }, service: 'catalog' },
        { name: 'orders', match: { pathPrefix: '/orders' }, service: 'orders' },
      ],
    });
    gateway = new MeshgateProcess(['gateway', '--config', gwFile], cleanEnv('info'));
    procs.push(gateway);

    await Promise.all([cA.p.ready(cA.admin, 30_000), cB.p.ready(cB.admin, 30_000), o.p.ready(o.admin, 30_000), gateway.ready(gwAdmin, 30_000)]);

    // Everyone must see everyone before traffic starts.
    const sees = async (admin: string, want: Record<string, number>) => {
      const r = await send(`${admin}/endpoints`);
      const services = json(r).services as Record<string, unknown[]>;
      return Object.entries(want).every(([s, n]) => services[s]?.length === n) ? true : undefined;
    };
    await waitFor('the gateway to see 2 catalog and 1 orders instances', () => sees(gwAdmin, { catalog: 2, orders: 1 }), 30_000, 100);
    await waitFor('the orders sidecar to see 2 catalog instances', () => sees(ordersAdmin, { catalog: 2 }), 30_000, 100);
  });

  after(async () => {
    await Promise.allSettled(procs.map((p) => p.stop('SIGTERM', 15_000)));
    await Promise.allSettled(apps.map((a) => a.close()));
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('GET /catalog/items: prefix stripped, query kept, round robin over both catalog instances', async () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 6; i++) {
      const r = await send(`${gw}/catalog/items?color=red&size=2&i=${i}`);
      assert.equal(r.status, 200, r.text);
      const body = json(r);
      assert.equal(body.method, 'GET');
      assert.equal(body.url, `/items?color=red&size=2&i=${i}`, 'the app sees the path without /catalog, with the query string');
      assert.ok(body.app === 'catalog-a' || body.app === 'catalog-b', `answered by ${body.app}`);
      assert.equal(r.headers['x-app'], body.app, 'the app’s own response header arrives');
      seen.set(body.app, (seen.get(body.app) ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort(), ['catalog-a', 'catalog-b'], 'both instances answer');
    assert.equal(seen.get('catalog-a'), 3, `round robin splits 6 sequential requests evenly: ${JSON.stringify([...seen])}`);
    assert.equal(seen.get('catalog-b'), 3);

    // The prefix itself maps to "/", and prefixes match whole segments only.
    const root = await send(`${gw}/catalog`);
    assert.equal(root.status, 200);
    assert.equal(json(root).url, '/');
    const notPrefix = await send(`${gw}/catalogue/items`);
    assert.equal(notPrefix.status, 404);
    assert.equal(json(notPrefix).error.code, 'NO_ROUTE');

    // HEAD is routed too, and carries no body.
    const head = await send(`${gw}/catalog/items`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  });

  test('request bodies reach the app byte for byte and response bodies stream back intact', async () => {
    // A JSON POST.
    const payload = Buffer.from(JSON.stringify({ sku: 'espresso-cup', quantity: 3, note: 'naïve café ☕', nested: { a: [1, 2, 3] } }));
    const before = orders.received.length;
    const post = await send(`${gw}/orders/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': payload.length },
      body: payload,
    });
    assert.equal(post.status, 201, 'the app’s 201 is passed through');
    assert.equal(post.headers['content-type'], 'application/json');
    assert.ok(post.body.equals(payload), 'echoed JSON body intact');
    const atApp = orders.received.slice(before).find((r) => r.method === 'POST' && r.url === '/orders/echo');
    assert.ok(atApp, 'the app received the POST');
    assert.ok(atApp.body.equals(payload), 'the app received the exact JSON bytes');
    assert.equal(atApp.headers['content-type'], 'application/json');

    // A ~1 MB binary PUT, echoed back in 64 KB chunks (chunked transfer encoding).
    const big = randomBytes(1024 * 1024 + 17);
    const sha = createHash('sha256').update(big).digest('hex');
    const put = await send(`${gw}/orders/echo`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-length': big.length },
      body: big,
      timeoutMs: 30_000,
    });
    assert.equal(put.status, 200);
    assert.equal(put.headers['x-received-length'], String(big.length), 'the app received every byte');
    assert.equal(put.headers['x-received-sha256'], sha, 'the app received the exact bytes');
    assert.equal(put.body.length, big.length, 'the whole response body came back');
    assert.ok(put.body.equals(big), 'the response body came back byte for byte');

    // A chunked upload (no content-length) also arrives intact.
    const chunkedBody = randomBytes(200_000);
    const chunked = await new Promise<Reply>((resolve, reject) => {
      const req = http.request(`${gw}/orders/echo`, { method: 'PUT', agent: false, headers: { 'content-type': 'application/octet-stream' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body, text: '' });
        });
      });
      req.setTimeout(30_000, () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      for (let off = 0; off < chunkedBody.length; off += 50_000) req.write(chunkedBody.subarray(off, off + 50_000));
      req.end();
    });
    assert.equal(chunked.status, 200);
    assert.equal(chunked.headers['x-received-sha256'], createHash('sha256').update(chunkedBody).digest('hex'));
    assert.ok(chunked.body.equals(chunkedBody));
  });

  test('status codes from the app pass through unchanged, with the app’s body', async () => {
    for (const code of [201, 404, 500, 503]) {
      const r = await send(`${gw}/orders/status/${code}`);
      assert.equal(r.status, code);
      assert.equal(r.text, `app says ${code}`, 'the app’s body, not a meshgate error reply');
      assert.equal(r.headers['x-app-status'], String(code));
      assert.equal(r.headers['x-meshgate-error'], undefined, 'only replies meshgate generates carry x-meshgate-error');
    }
  });

  test('end-to-end response headers arrive; hop-by-hop response headers do not', async () => {
    const r = await send(`${gw}/orders/headers`);
    assert.equal(r.status, 200);
    assert.equal(r.text, 'headers');
    assert.equal(r.headers['x-custom-one'], 'first');
    assert.equal(r.headers['x-custom-two'], 'second');
    assert.deepEqual(rawValues(r, 'set-cookie'), ['a=1; Path=/', 'b=2; Path=/; HttpOnly'], 'both set-cookie headers, separately');
    assert.equal(r.headers['x-secret'], undefined, 'a header named by Connection is hop-by-hop');
    for (const v of rawValues(r, 'connection')) assert.ok(!/x-secret/i.test(v), `the app's Connection header leaked: ${v}`);
    for (const v of rawValues(r, 'keep-alive')) assert.ok(!/999|max=7/.test(v), `the app's Keep-Alive header leaked: ${v}`);
  });

  test(
    'fields named by several Connection response headers are all dropped',
    async () => {
      const r = await send(`${gw}/orders/headers-2`);
      assert.equal(r.status, 200);
      assert.equal(r.text, 'headers-2');
      assert.equal(r.headers['x-hop-b'], undefined);
      assert.equal(r.headers['x-hop-a'], undefined, 'x-hop-a, named by the first Connection header, leaked');
    },
  );

  test('hop-by-hop request headers from the client do not reach the app', async () => {
    const before = orders.received.length;
    const r = await send(`${gw}/orders/plain`, {
      headers: { connection: 'keep-alive, x-client-hop', 'x-client-hop': 'nope', 'keep-alive': 'timeout=5', 'x-end-to-end': 'yes', te: 'trailers' },
    });
    assert.equal(r.status, 200);
    const seen = orders.received.slice(before).find((q) => q.url === '/orders/plain');
    assert.ok(seen);
    assert.equal(seen.headers['x-end-to-end'], 'yes');
    assert.equal(seen.headers['x-client-hop'], undefined, 'a header named by Connection is dropped');
    assert.notEqual(seen.headers['keep-alive'], 'timeout=5');
    assert.equal(seen.headers.te, undefined);
  });

  test('x-forwarded-*, x-request-id and traceparent at the app', async () => {
    const [portStr] = gw.split(':').slice(-1);
    // Without ids: the edge creates them and echoes the request id to the client.
    let before = catalogA.received.length + catalogB.received.length;
    const r1 = await send(`${gw}/catalog/fwd-1`, { headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' } });
    assert.equal(r1.status, 200);
    const h1 = json(r1).headers as http.IncomingHttpHeaders;
    assert.equal(h1['x-forwarded-for'], '203.0.113.7, 127.0.0.1', 'the client IP is appended to the chain');
    assert.equal(h1['x-forwarded-proto'], 'http', 'the edge states the protocol itself');
    assert.equal(h1['x-forwarded-host'], `127.0.0.1:${portStr}`, 'the Host the client used');
    const rid1 = h1['x-request-id'];
    assert.equal(typeof rid1, 'string');
    assert.match(rid1 as string, /^[\w.:\-/+=]{8,128}$/, 'a generated request id');
    assert.deepEqual(rawValues(r1, 'x-request-id'), [rid1], 'the client gets the same id back, once');
    parseTraceparent(h1.traceparent); // a new, valid trace
    assert.equal(catalogA.received.length + catalogB.received.length, before + 1);

    // Two requests without ids get different ids.
    const r2 = await send(`${gw}/catalog/fwd-2`);
    const h2 = json(r2).headers as http.IncomingHttpHeaders;
    assert.notEqual(h2['x-request-id'], rid1);
    assert.notEqual(parseTraceparent(h2.traceparent).traceId, parseTraceparent(h1.traceparent).traceId);
    assert.equal(h2['x-forwarded-for'], '127.0.0.1');

    // With ids: the request id is kept, the trace id is kept and the parent id is this hop's.
    const traceId = randomBytes(16).toString('hex');
    const parentId = randomBytes(8).toString('hex');
    before = catalogA.received.length + catalogB.received.length;
    const r3 = await send(`${gw}/catalog/fwd-3`, { headers: { 'x-request-id': 'client-rid-42', traceparent: `00-${traceId}-${parentId}-01` } });
    assert.equal(r3.status, 200);
    const h3 = json(r3).headers as http.IncomingHttpHeaders;
    assert.equal(h3['x-request-id'], 'client-rid-42');
    assert.deepEqual(rawValues(r3, 'x-request-id'), ['client-rid-42']);
    const tp = parseTraceparent(h3.traceparent);
    assert.equal(tp.traceId, traceId, 'same trace id at the app');
    assert.notEqual(tp.parentId, parentId, 'a new parent (span) id');
    assert.equal(tp.flags, '01');
    assert.equal(catalogA.received.length + catalogB.received.length, before + 1);

    // Implausible ids are replaced rather than forwarded; an invalid traceparent starts a new trace.
    const r4 = await send(`${gw}/catalog/fwd-4`, { headers: { 'x-request-id': 'has spaces;and<junk>', traceparent: 'not-a-traceparent' } });
    const h4 = json(r4).headers as http.IncomingHttpHeaders;
    assert.notEqual(h4['x-request-id'], 'has spaces;and<junk>');
    assert.match(String(h4['x-request-id']), /^[\w.:\-/+=]{8,128}$/);
    assert.deepEqual(rawValues(r4, 'x-request-id'), [h4['x-request-id']]);
    parseTraceparent(h4.traceparent);
    const zero = await send(`${gw}/catalog/fwd-5`, { headers: { traceparent: `00-${'0'.repeat(32)}-${parentId}-01` } });
    assert.notEqual(parseTraceparent((json(zero).headers as http.IncomingHttpHeaders).traceparent).traceId, '0'.repeat(32), 'the all-zero trace id is invalid');
  });

  test('east-west: GET /orders/7 → orders app → its sidecar outbound → catalog; one trace and request id', async () => {
    const traceId = randomBytes(16).toString('hex');
    const clientParent = randomBytes(8).toString('hex');
    const r = await send(`${gw}/orders/7`, { headers: { 'x-request-id': 'ew-rid-7', traceparent: `00-${traceId}-${clientParent}-01` } });
    assert.equal(r.status, 200, r.text);
    const body = json(r);
    assert.equal(body.app, 'orders');
    assert.equal(body.order.id, 7);
    assert.equal(body.catalogStatus, 200);
    assert.ok(body.catalog.app === 'catalog-a' || body.catalog.app === 'catalog-b');
    assert.equal(body.catalog.url, '/items?order=7', 'the outbound hop keeps the path the app asked for');
    assert.deepEqual(rawValues(r, 'x-request-id'), ['ew-rid-7']);

    const ordersHeaders = body.headers as http.IncomingHttpHeaders;
    const catalogHeaders = body.catalog.headers as http.IncomingHttpHeaders;
    assert.equal(ordersHeaders['x-request-id'], 'ew-rid-7');
    assert.equal(catalogHeaders['x-request-id'], 'ew-rid-7', 'the request id crosses the east-west hop');
    const atOrders = parseTraceparent(ordersHeaders.traceparent);
    const atCatalog = parseTraceparent(catalogHeaders.traceparent);
    assert.equal(atOrders.traceId, traceId);
    assert.equal(atCatalog.traceId, traceId, 'one trace across both hops');
    assert.equal(new Set([clientParent, atOrders.parentId, atCatalog.parentId]).size, 3, 'every hop has its own parent id');

    // Without client ids, the ones the edge made are shared by both apps.
    const r2 = await send(`${gw}/orders/8`);
    assert.equal(r2.status, 200, r2.text);
    const b2 = json(r2);
    assert.equal(b2.order.id, 8);
    const [o2, c2] = [b2.headers as http.IncomingHttpHeaders, b2.catalog.headers as http.IncomingHttpHeaders];
    assert.equal(typeof o2['x-request-id'], 'string');
    assert.equal(c2['x-request-id'], o2['x-request-id']);
    assert.deepEqual(rawValues(r2, 'x-request-id'), [o2['x-request-id']]);
    assert.equal(parseTraceparent(c2.traceparent).traceId, parseTraceparent(o2.traceparent).traceId);
    assert.notEqual(parseTraceparent(c2.traceparent).parentId, parseTraceparent(o2.traceparent).parentId);
  });

  test('metrics: request counters and histogram counts match the requests sent', async () => {
    const edgeCatalog = { direction: 'edge', service: 'catalog', route: 'catalog', dc: 'local' };
    const snapshot = async () => {
      const [g, c1, c2, o] = await Promise.all([scrape(gwAdmin), scrape(catalogAdmin[0]), scrape(catalogAdmin[1]), scrape(ordersAdmin)]);
      return {
        edge200: metric(g, 'meshgate_requests_total', { ...edgeCatalog, status_code: '200' }),
        edgeCount: metric(g, 'meshgate_request_duration_seconds_count', edgeCatalog),
        edgeInf: metric(g, 'meshgate_request_duration_seconds_bucket', { ...edgeCatalog, le: '+Inf' }),
        edgeOrders200: metric(g, 'meshgate_requests_total', { direction: 'edge', service: 'orders', route: 'orders', status_code: '200' }),
        inbound200:
          metric(c1, 'meshgate_requests_total', { direction: 'inbound', service: 'catalog', status_code: '200' }) +
          metric(c2, 'meshgate_requests_total', { direction: 'inbound', service: 'catalog', status_code: '200' }),
        inboundCount:
          metric(c1, 'meshgate_request_duration_seconds_count', { direction: 'inbound', service: 'catalog' }) +
          metric(c2, 'meshgate_request_duration_seconds_count', { direction: 'inbound', service: 'catalog' }),
        outboundCatalog200: metric(o, 'meshgate_requests_total', { direction: 'outbound', service: 'catalog', status_code: '200' }),
        outboundCatalogCount: metric(o, 'meshgate_request_duration_seconds_count', { direction: 'outbound', service: 'catalog' }),
        ordersInbound200: metric(o, 'meshgate_requests_total', { direction: 'inbound', service: 'orders', status_code: '200' }),
      };
    };
    const start = await snapshot();
    const N = 7;
    for (let i = 0; i < N; i++) {
      const r = await send(`${gw}/catalog/items?m=${i}`);
      assert.equal(r.status, 200);
    }
    const eastWest = await send(`${gw}/orders/1`);
    assert.equal(eastWest.status, 200, eastWest.text);

    const want = {
      edge200: start.edge200 + N,
      edgeCount: start.edgeCount + N,
      edgeInf: start.edgeInf + N,
      edgeOrders200: start.edgeOrders200 + 1,
      inbound200: start.inbound200 + N + 1, // N from the edge, 1 east-west from orders
      inboundCount: start.inboundCount + N + 1,
      outboundCatalog200: start.outboundCatalog200 + 1,
      outboundCatalogCount: start.outboundCatalogCount + 1,
      ordersInbound200: start.ordersInbound200 + 1,
    };
    // Counters are recorded as each response ends; poll (bounded) until they settle, then compare exactly.
    let last = start;
    await waitFor(
      'the counters to reach the expected values',
      async () => {
        last = await snapshot();
        return JSON.stringify(last) === JSON.stringify(want) ? true : undefined;
      },
      10_000,
      100,
    ).catch(() => undefined);
    assert.deepEqual(last, want);

    // Labels are as documented: the edge series carries dc and route.
    const g = await scrape(gwAdmin);
    const series = g.find((s) => s.name === 'meshgate_requests_total' && s.labels.route === 'catalog' && s.labels.status_code === '200');
    assert.ok(series);
    assert.deepEqual(Object.keys(series.labels).sort(), ['dc', 'direction', 'route', 'service', 'status_code']);
    // The earlier /catalogue request was a local reply, counted as such.
    assert.ok(metric(g, 'meshgate_local_replies_total', { direction: 'edge', code: 'NO_ROUTE' }) >= 1);
  });

  test('access log: one JSON line per request with rid, status, route, service and upstream', async () => {
    const tag = randomBytes(4).toString('hex');
    const rids = Array.from({ length: 5 }, (_, i) => `acc-${tag}-${i}`);
    for (const rid of rids) {
      const r = await send(`${gw}/catalog/items`, { headers: { 'x-request-id': rid } });
      assert.equal(r.status, 200);
    }
    const missRid = `acc-${tag}-miss`;
    const miss = await send(`${gw}/nowhere`, { headers: { 'x-request-id': missRid } });
    assert.equal(miss.status, 404);

    // The log is written in blocks (asynchronous, buffered): send filler traffic until every line we
    // are waiting for has been written. Bounded.
    const wanted = [...rids, missRid];
    let filler = 0;
    await waitFor(
      'access-log lines for every request',
      async () => {
        const have = new Set(gateway.logs().map((l) => l.rid));
        if (wanted.every((r) => have.has(r))) return true;
        if (filler < 300) {
          filler++;
          await send(`${gw}/catalog/filler`, { headers: { 'x-request-id': `filler-${tag}-${filler}` } });
        }
        return undefined;
      },
      30_000,
      10,
    );

    const logs = gateway.logs();
    const upstreams = new Set(catalogInbound.map((p) => `127.0.0.1:${p}`));
    for (const rid of rids) {
      const lines = logs.filter((l) => l.rid === rid);
      assert.equal(lines.length, 1, `exactly one line for ${rid}`);
      const l = lines[0];
      assert.equal(l.msg, 'access');
      assert.equal(l.dir, 'edge');
      assert.equal(l.method, 'GET');
      assert.equal(l.path, '/catalog/items');
      assert.equal(l.status, 200);
      assert.equal(l.route, 'catalog');
      assert.equal(l.service, 'catalog');
      assert.ok(upstreams.has(String(l.upstream)), `upstream ${String(l.upstream)} is a catalog sidecar's inbound`);
      assert.equal(typeof l.ms, 'number');
      assert.equal(l.client, '127.0.0.1');
    }
    const missLines = logs.filter((l) => l.rid === missRid);
    assert.equal(missLines.length, 1);
    assert.equal(missLines[0].msg, 'access');
    assert.equal(missLines[0].status, 404);
    assert.equal(missLines[0].error, 'NO_ROUTE');
    assert.equal(missLines[0].upstream, undefined);
  });

  // Last: it stops one catalog sidecar.
  test(
    'a catalog sidecar stopped (SIGTERM) under steady load: no failed requests, the other instance takes over',
    async () => {
      const load = steadyLoad(`${gw}/catalog/items`, { concurrency: 8, countHeader: 'x-app', maxRequests: 50_000 });
      try {
        await waitFor('load to flow to both instances', () => (load.result.byHeader.size === 2 && load.result.ok >= 200 ? true : undefined), 20_000, 20);
        const stopped = catalogProcs[1]; // catalog-2, in front of catalog-b
        stopped.child.kill('SIGTERM');
        const exit = await Promise.race([
          stopped.wait(),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error('catalog-2 did not exit within 25 s')), 25_000).unref()),
        ]);
        assert.equal(exit.code, 0, `exit code; stderr: ${exit.stderr.slice(-1000)}`);
        // Keep the load on for a while after the exit: only catalog-a answers now.
        const sentAtExit = load.result.sent;
        await waitFor('more requests after the exit', () => (load.result.sent >= sentAtExit + 200 ? true : undefined), 20_000, 20);
      } finally {
        await load.stop();
      }
      const r = load.result;
      assert.deepEqual(r.failures.slice(0, 5), [], `${r.failures.length} of ${r.sent} requests failed`);
      assert.equal(r.ok, r.sent);
      const after = await send(`${gw}/catalog/items`);
      assert.equal(after.status, 200);
      assert.equal(after.headers['x-app'], 'catalog-a');
    },
  );
});
