// End to end through real processes: the errors meshgate answers itself (404/503/502/504, malformed
// HTTP, oversized headers) and graceful shutdown of a sidecar and of the gateway under SIGTERM while
// a request is in flight. Discovery goes through a real redis-server started for this file.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import http from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { MeshgateProcess, tempDir, writeConfig, type RunResult } from '../helpers/cli.ts';
import { cleanEnv } from '../helpers/env.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { RedisServer } from '../helpers/redis-server.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';

// ---------------------------------------------------------------------------------------------
// Small helpers (local to this file)

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  text: string;
}

/** One request on a fresh connection (agent: false), so no socket outlives the test. */
function send(url: string, opts: { method?: string; headers?: http.OutgoingHttpHeaders; body?: string; timeoutMs?: number } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('error', reject);
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, text });
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

function rawValues(r: Reply, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) if (r.rawHeaders[i].toLowerCase() === name) out.push(r.rawHeaders[i + 1]);
  return out;
}

interface ErrorBody {
  error: { code: string; message: string; requestId: string };
}

/** Asserts a meshgate error reply: status, JSON body with code/message/requestId. */
function assertMeshError(r: Reply, status: number, code: string): ErrorBody['error'] {
  assert.equal(r.status, status, `expected ${status} ${code}, got ${r.status}: ${r.text.slice(0, 300)}`);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  let body: ErrorBody;
  try {
    body = JSON.parse(r.text) as ErrorBody;
  } catch {
    throw new Error(`not a JSON error body: ${r.text.slice(0, 300)}`);
  }
  assert.deepEqual(Object.keys(body), ['error']);
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  assert.equal(typeof body.error.requestId, 'string');
  assert.ok(body.error.requestId.length > 0);
  return body.error;
}

/** Writes raw bytes on a new TCP connection and collects what comes back until the peer closes (bounded). */
function rawExchange(port: number, data: string | Buffer, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect(port, '127.0.0.1');
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    const timer = setTimeout(done, timeoutMs);
    // No half-close: a client FIN makes Node's HTTP server abort the request (httpAllowHalfOpen is
    // off), so the socket stays open until the server answers and closes it.
    s.on('connect', () => s.write(data));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', done);
    s.on('error', () => {}); // a reset after the reply is fine: 'close' follows
  });
}

/** Resolves with the error code of a TCP connect attempt ('connected' when it succeeds). */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.setTimeout(3000, () => {
      s.destroy();
      resolve('timeout');
    });
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}


/** An app whose answers wait until the test releases them (or the client goes away). */
interface HeldApp {
  port: number;
  /** Requests received and not yet answered. */
  readonly pending: number;
  received: number;
  release(): void;
  close(): Promise<void>;
}

/** GET `path` from `service` through a sidecar's outbound listener, as a meshed app does. */
function callThroughOutbound(outboundPort: number, service: string, path: string, requestId: string | undefined): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { host: service };
    if (requestId) headers['x-request-id'] = requestId;
    const req = http.request({ host: '127.0.0.1', port: outboundPort, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
        } catch {
          resolve({ status: res.statusCode ?? 0, body: text });
        }
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * `relay`: once released, the app first calls that service through its own sidecar's outbound
 * listener (east-west) and answers 200 with the result, or 502 if the call fails.
 */
async function startHeldApp(name: string, relay?: { outboundPort: number; service: string }, safetyMs = 15_000): Promise<HeldApp> {
  const waiting = new Set<() => void>();
  const server = http.createServer((req, res) => {
    app.received++;
    req.resume();
    const answer = () => {
      clearTimeout(safety);
      waiting.delete(answer);
      if (res.destroyed) return;
      const reply = (status: number, body: object) => {
        res.writeHead(status, { 'content-type': 'application/json', 'x-app': name });
        res.end(JSON.stringify({ app: name, url: req.url, ...body }));
      };
      if (!relay) return reply(200, {});
      const rid = req.headers['x-request-id'];
      callThroughOutbound(relay.outboundPort, relay.service, '/items', typeof rid === 'string' ? rid : undefined).then(
        (r) => reply(r.status === 200 ? 200 : 502, { relayed: r }),
        (err: NodeJS.ErrnoException) => reply(502, { relayError: err.code ?? err.message }),
      );
    };
    const safety = setTimeout(answer, safetyMs); // never hold forever
    waiting.add(answer);
    res.on('close', () => {
      clearTimeout(safety);
      waiting.delete(answer);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const app: HeldApp = {
    port: (server.address() as AddressInfo).port,
    get pending() {
      return waiting.size;
    },
    received: 0,
    release() {
      for (const a of [...waiting]) a();
    },
    close: async () => {
      app.release();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  return app;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
    }),
  ]);
}

// ---------------------------------------------------------------------------------------------

describe('errors and graceful shutdown', () => {
  let redis: RedisServer | undefined;
  let dir = '';
  const procs: MeshgateProcess[] = [];
  const apps: Array<{ close(): Promise<void> }> = [];
  let catalogApp: TestApp;
  let brokenApp: TestApp;
  let slowApp: HeldApp;
  let drainApp: HeldApp;
  let relayApp: HeldApp;
  let gateway: MeshgateProcess;
  let gwPort = 0;
  let gw = '';
  let gwAdmin = '';
  const sc: Record<string, { p: MeshgateProcess; inbound: number; outbound: number; admin: string }> = {};

  before(async () => {
    redis = await RedisServer.start();
    dir = tempDir('meshgate-e2e-errors-');
    const store = { kind: 'redis', url: redis.url };
    const discovery = { resync: '500ms', stateDir: dir };

    catalogApp = await startApp('catalog-a');
    brokenApp = await startApp('broken-a');
    slowApp = await startHeldApp('slow-a', undefined, 60_000); // answers only if nobody gives up first
    drainApp = await startHeldApp('drain-a');
    const relayOutbound = await freePort();
    relayApp = await startHeldApp('relay-a', { outboundPort: relayOutbound, service: 'catalog' });
    apps.push(catalogApp, brokenApp, slowApp, drainApp, relayApp);

    const sidecar = async (service: string, appPort: number, outboundPort?: number) => {
      const [inbound, outbound, admin] = [await freePort(), outboundPort ?? (await freePort()), await freePort()];
      const file = writeConfig(dir, `${service}.yaml`, {
        node: { service, instance: `${service}-1`, dc: 'local', zone: 'local-a', metadata: {} },
        app: { address: '127.0.0.1', port: appPort },
        inbound: { address: '127.0.0.1', port: inbound },
        outbound: { address: '127.0.0.1', port: outbound },
        admin: { address: '127.0.0.1', port: admin },
        store,
        registration: { ttl: '10s', heartbeat: '1s' },
        discovery,
        log: { level: 'warn', access: false },
        drainTimeout: '20s',
        services: { broken: { retries: { attempts: 0 }, breaker: { consecutiveFailures: 1000 }, outlier: { consecutive5xx: 1000 } } },
      });
      const p = new MeshgateProcess(['proxy', '--config', file], cleanEnv('warn'));
      procs.push(p);
      sc[service] = { p, inbound, outbound, admin: `http://127.0.0.1:${admin}` };
    };
    await sidecar('catalog', catalogApp.port);
    await sidecar('broken', brokenApp.port);
    await sidecar('slow', slowApp.port);
    await sidecar('drain', drainApp.port);
    await sidecar('relay', relayApp.port, relayOutbound);

    gwPort = await freePort();
    const adminPort = await freePort();
    gw = `http://127.0.0.1:${gwPort}`;
    gwAdmin = `http://127.0.0.1:${adminPort}`;
    const gwFile = writeConfig(dir, 'gateway.yaml', {
      node: { name: 'edge-errors', dc: 'local' },
      store,
      listeners: { http: { address: '127.0.0.1', port: gwPort } },
      admin: { address: '127.0.0.1', port: adminPort },
      discovery,
      log: { level: 'warn', access: false },
      drainTimeout: '20s',
      services: {
        catalog: { timeouts: { request: '10s' } },
        ghost: {},
        // These tests look at single 502s: no retries, and a breaker that does not trip here
        // (resilience tests cover both).
        broken: { retries: { attempts: 0 }, breaker: { consecutiveFailures: 1000 }, outlier: { consecutive5xx: 1000 } },
        slow: { timeouts: { request: '300ms' } },
        drain: {},
        relay: {},
      },
      routes: [
        { name: 'catalog', match: { pathPrefix: '/catalog', methods: ['GET', 'HEAD'] }, rewrite: { stripPrefix: true }, service: 'catalog' },
        { name: 'ghost', match: { pathPrefix: '/ghost' }, service: 'ghost' },
        { name: 'broken', match: { pathPrefix: '/broken' }, service: 'broken' },
        { name: 'slow', match: { pathPrefix: '/slow' }, service: 'slow' },
        { name: 'drain', match: { pathPrefix: '/drain' }, service: 'drain' },
        { name: 'relay', match: { pathPrefix: '/relay' }, service: 'relay' },
      ],
    });
    gateway = new MeshgateProcess(['gateway', '--config', gwFile], cleanEnv('warn'));
    procs.push(gateway);

    await Promise.all([...Object.values(sc).map((s) => s.p.ready(s.admin, 30_000)), gateway.ready(gwAdmin, 30_000)]);
    const want = ['catalog', 'broken', 'slow', 'drain', 'relay'];
    const sees = async (admin: string) => {
      const services = (JSON.parse((await send(`${admin}/endpoints`)).text) as { services: Record<string, unknown[]> }).services;
      return want.every((s) => services[s]?.length === 1) ? true : undefined;
    };
    await waitFor('the gateway to see every registered service', () => sees(gwAdmin), 30_000, 100);
    await waitFor('the catalog sidecar to see every registered service', () => sees(sc.catalog.admin), 30_000, 100);
    await waitFor('the relay sidecar to see every registered service', () => sees(sc.relay.admin), 30_000, 100);
  });

  after(async () => {
    slowApp?.release();
    drainApp?.release();
    relayApp?.release();
    await Promise.allSettled(procs.map((p) => p.stop('SIGTERM', 15_000)));
    await Promise.allSettled(apps.map((a) => a.close()));
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('sanity: the healthy route answers 200', async () => {
    const r = await send(`${gw}/catalog/items`);
    assert.equal(r.status, 200, r.text);
    assert.equal(JSON.parse(r.text).app, 'catalog-a');
  });

  test('unknown route → 404 NO_ROUTE as JSON with the request id', async () => {
    const r = await send(`${gw}/nowhere/at/all`);
    const err = assertMeshError(r, 404, 'NO_ROUTE');
    assert.deepEqual(rawValues(r, 'x-request-id'), [err.requestId], 'the id in the body is the one in the header');

    const kept = await send(`${gw}/nowhere`, { headers: { 'x-request-id': 'err-rid-1' } });
    assert.equal(assertMeshError(kept, 404, 'NO_ROUTE').requestId, 'err-rid-1', 'a client id is quoted back');

    // A method the route does not allow, and a path that only shares characters with a prefix.
    assertMeshError(await send(`${gw}/catalog/items`, { method: 'POST', body: '{}' }), 404, 'NO_ROUTE');
    assertMeshError(await send(`${gw}/catalogue`), 404, 'NO_ROUTE');
  });

  test('a service with no registered instances → 503 NO_ENDPOINTS', async () => {
    const r = await send(`${gw}/ghost/x`, { headers: { 'x-request-id': 'err-rid-ghost' } });
    const err = assertMeshError(r, 503, 'NO_ENDPOINTS');
    assert.equal(err.requestId, 'err-rid-ghost');
    assert.match(err.message, /ghost/);
  });

  test('a registered instance whose app is down → 502 UPSTREAM_UNAVAILABLE from its sidecar', async () => {
    // The app answers while it is up...
    const ok = await send(`${gw}/broken/x`);
    assert.equal(ok.status, 200, ok.text);
    // ...then goes away while its sidecar stays registered.
    await brokenApp.close();
    const r = await send(`${gw}/broken/x`, { headers: { 'x-request-id': 'err-rid-broken' } });
    const err = assertMeshError(r, 502, 'UPSTREAM_UNAVAILABLE');
    assert.equal(err.requestId, 'err-rid-broken');

    // The sidecar generated it (inbound local reply), the gateway relayed it as a response.
    const m = (await send(`${sc.broken.admin}/metrics`)).text;
    assert.match(m, /meshgate_local_replies_total\{[^}]*direction="inbound"[^}]*code="UPSTREAM_UNAVAILABLE"[^}]*\} [1-9]/);
  });

  test(
    'the client gets x-request-id once even when the upstream response carries one',
    async () => {
      // An app that echoes the request id (common practice).
      catalogApp.handler = (req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': String(req.headers['x-request-id']) });
        res.end('{}');
      };
      try {
        const r = await send(`${gw}/catalog/echo-id`, { headers: { 'x-request-id': 'err-rid-echo' } });
        assert.equal(r.status, 200);
        assert.deepEqual(rawValues(r, 'x-request-id'), ['err-rid-echo'], 'one x-request-id header');
      } finally {
        catalogApp.handler = undefined;
      }
      // A sidecar's local reply relayed by the edge carries the sidecar's x-request-id header.
      const r = await send(`${gw}/broken/x`, { headers: { 'x-request-id': 'err-rid-dup' } });
      assert.equal(r.status, 502);
      assert.deepEqual(rawValues(r, 'x-request-id'), ['err-rid-dup'], 'one x-request-id header');
    },
  );

  test('an app slower than the service request timeout (300ms) → 504 UPSTREAM_TIMEOUT', async () => {
    const r = await send(`${gw}/slow/x`, { headers: { 'x-request-id': 'err-rid-slow' } });
    const err = assertMeshError(r, 504, 'UPSTREAM_TIMEOUT');
    assert.equal(err.requestId, 'err-rid-slow');
    assert.equal(slowApp.received >= 1, true, 'the request did reach the slow app');
    // The gateway gave up, and the abort travelled on: the sidecar let go of the app's request
    // (the app would otherwise hold it for 60 s). Bounded wait.
    await waitFor('the slow app to see its request abandoned', () => (slowApp.pending === 0 ? true : undefined), 15_000, 50);
    const m = (await send(`${gwAdmin}/metrics`)).text;
    assert.match(m, /meshgate_local_replies_total\{[^}]*direction="edge"[^}]*service="slow"[^}]*code="UPSTREAM_TIMEOUT"[^}]*\} [1-9]/);
  });

  test('sidecar outbound: a Host naming no service → 404 NO_ROUTE; a known one is forwarded', async () => {
    const out = `http://127.0.0.1:${sc.catalog.outbound}`;
    const r = await send(`${out}/items`, { headers: { host: 'no-such-service', 'x-request-id': 'err-rid-out' } });
    const err = assertMeshError(r, 404, 'NO_ROUTE');
    assert.equal(err.requestId, 'err-rid-out');
    assert.match(err.message, /no-such-service/);

    // A service the mesh knows: forwarded through that service's sidecar to its app.
    const ok = await send(`${out}/items?q=1`, { headers: { host: 'catalog' } });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(JSON.parse(ok.text).url, '/items?q=1');
    // A registered service with no app behind it: the other sidecar's 502 comes back.
    assertMeshError(await send(`${out}/x`, { headers: { host: 'broken' } }), 502, 'UPSTREAM_UNAVAILABLE');
  });

  test('malformed HTTP on a raw socket → 400, and the process keeps serving', async () => {
    const targets = [
      { name: 'gateway', port: gwPort, good: 'GET /catalog/items HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n' },
      { name: 'sidecar inbound', port: sc.catalog.inbound, good: 'GET /items HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n' },
      { name: 'sidecar outbound', port: sc.catalog.outbound, good: 'GET /items HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n' },
    ];
    const bad = [
      ['a bad request line', 'THIS IS NOT HTTP\r\n\r\n'],
      ['both Content-Length and Transfer-Encoding', 'POST /catalog/items HTTP/1.1\r\nHost: edge\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
      ['an invalid header line', 'GET /catalog/items HTTP/1.1\r\nHost: edge\r\nBad Header Without Colon\r\n\r\n'],
      ['no Host header', 'GET /catalog/items HTTP/1.1\r\nConnection: close\r\n\r\n'],
    ] as const;
    for (const t of targets) {
      for (const [what, bytes] of bad) {
        const reply = await rawExchange(t.port, bytes);
        assert.match(reply, /^HTTP\/1\.1 400 /, `${t.name}, ${what}: got ${JSON.stringify(reply.slice(0, 80))}`);
      }
      const good = await rawExchange(t.port, t.good);
      assert.match(good, /^HTTP\/1\.1 200 /, `${t.name} still serves after malformed requests: ${JSON.stringify(good.slice(0, 120))}`);
    }
    for (const p of [gateway, sc.catalog.p]) assert.equal(p.exited, false);
  });

  test('oversized request headers (> 16 KB) → 431, and the process keeps serving', async () => {
    const big = 'x'.repeat(20 * 1024);
    for (const [name, port, host] of [['gateway', gwPort, 'edge'], ['sidecar inbound', sc.catalog.inbound, 'catalog']] as const) {
      const reply = await rawExchange(port, `GET /catalog/items HTTP/1.1\r\nHost: ${host}\r\nX-Big: ${big}\r\nConnection: close\r\n\r\n`);
      assert.match(reply, /^HTTP\/1\.1 431 /, `${name}: got ${JSON.stringify(reply.slice(0, 80))}`);
    }
    // Many headers that add up past the limit are refused too.
    const many = Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'v'.repeat(60)}\r\n`).join('');
    assert.match(await rawExchange(gwPort, `GET /catalog/items HTTP/1.1\r\nHost: edge\r\n${many}Connection: close\r\n\r\n`), /^HTTP\/1\.1 431 /);
    const after = await send(`${gw}/catalog/items`);
    assert.equal(after.status, 200);
  });

  test('sidecar SIGTERM: in-flight request completes, instance deregistered, new connections refused, exit 0', async () => {
    const drain = sc.drain;
    const inflight = send(`${gw}/drain/slow`, { headers: { 'x-request-id': 'drain-rid' }, timeoutMs: 40_000 });
    inflight.catch(() => {}); // awaited below
    await waitFor('the in-flight request to reach the app', () => (drainApp.pending === 1 ? true : undefined), 15_000, 20);

    drain.p.child.kill('SIGTERM');

    // It leaves the registry: the gateway stops listing it.
    await waitFor(
      'the gateway to drop the drain instance',
      async () => {
        const services = (JSON.parse((await send(`${gwAdmin}/endpoints`)).text) as { services: Record<string, unknown[]> }).services;
        return (services.drain?.length ?? 0) === 0 ? true : undefined;
      },
      15_000,
      50,
    );
    // It stops accepting new connections while the old request is still being served.
    await waitFor('the inbound listener to refuse connections', async () => ((await tryConnect(drain.inbound)) === 'ECONNREFUSED' ? true : undefined), 15_000, 50);
    const ready = await send(`${drain.admin}/ready`).catch(() => undefined);
    if (ready) {
      assert.equal(ready.status, 503, 'a draining sidecar is not ready');
      assert.equal(JSON.parse(ready.text).reason, 'draining');
    }
    // New traffic for the service has nowhere to go.
    assertMeshError(await send(`${gw}/drain/new`), 503, 'NO_ENDPOINTS');

    assert.equal(drain.p.exited, false, 'still draining while the request is in flight');
    assert.equal(drainApp.pending, 1);
    drainApp.release();
    const r = await inflight;
    assert.equal(r.status, 200, r.text);
    assert.equal(JSON.parse(r.text).url, '/drain/slow');
    assert.equal(r.headers['x-app'], 'drain-a');

    const exit: RunResult = await withTimeout(drain.p.wait(), 25_000, 'the sidecar exit');
    assert.equal(exit.code, 0, `exit code; stderr: ${exit.stderr.slice(-1000)}`);
    assert.equal(exit.signal, null);
    for (const port of [drain.inbound, drain.outbound]) assert.equal(await tryConnect(port), 'ECONNREFUSED', `port ${port} is closed after exit`);
  });

  test(
    'sidecar SIGTERM: an in-flight request that still needs an east-west call through the outbound completes',
    async () => {
      const relay = sc.relay;
      // Before shutdown the relay works end to end: gateway → relay sidecar → relay app → its outbound → catalog.
      const warm = send(`${gw}/relay/warm`, { timeoutMs: 30_000 });
      await waitFor('the warm-up request to reach the relay app', () => (relayApp.pending === 1 ? true : undefined), 15_000, 20);
      relayApp.release();
      const w = await warm;
      assert.equal(w.status, 200, w.text);
      assert.equal((JSON.parse(w.text) as { relayed: { body: { app: string } } }).relayed.body.app, 'catalog-a');

      const inflight = send(`${gw}/relay/in-flight`, { headers: { 'x-request-id': 'relay-rid' }, timeoutMs: 40_000 });
      inflight.catch(() => {});
      await waitFor('the in-flight request to reach the relay app', () => (relayApp.pending === 1 ? true : undefined), 15_000, 20);
      relay.p.child.kill('SIGTERM');
      await waitFor(
        'the gateway to drop the relay instance',
        async () => {
          const services = (JSON.parse((await send(`${gwAdmin}/endpoints`)).text) as { services: Record<string, unknown[]> }).services;
          return (services.relay?.length ?? 0) === 0 ? true : undefined;
        },
        15_000,
        50,
      );
      await waitFor('the inbound listener to refuse connections', async () => ((await tryConnect(relay.inbound)) === 'ECONNREFUSED' ? true : undefined), 15_000, 50);
      assert.equal(relay.p.exited, false, 'still draining while the request is in flight');

      relayApp.release(); // the app now calls catalog through its (draining) sidecar
      const r = await inflight;
      const exit = await withTimeout(relay.p.wait(), 25_000, 'the sidecar exit');
      assert.equal(exit.code, 0, `exit code; stderr: ${exit.stderr.slice(-1000)}`);
      assert.equal(r.status, 200, `the in-flight request failed: ${r.text}`);
    },
  );

  test('gateway SIGTERM: in-flight request completes, new connections refused, exit 0', async () => {
    let held = true;
    catalogApp.handler = (req, res) => {
      const answer = () => {
        res.writeHead(200, { 'content-type': 'application/json', 'x-app': 'catalog-a' });
        res.end(JSON.stringify({ app: 'catalog-a', url: req.url, held: true }));
      };
      if (!held) return answer();
      const poll = setInterval(() => {
        if (!held || res.destroyed) {
          clearInterval(poll);
          if (!res.destroyed) answer();
        }
      }, 20);
      setTimeout(() => (held = false), 15_000).unref(); // never hold forever
    };
    const before = catalogApp.received.length;
    const inflight = send(`${gw}/catalog/hold`, { headers: { 'x-request-id': 'gw-drain-rid' }, timeoutMs: 40_000 });
    inflight.catch(() => {});
    await waitFor('the in-flight request to reach the app', () => (catalogApp.received.length > before ? true : undefined), 15_000, 20);

    gateway.child.kill('SIGTERM');
    await waitFor('the gateway listener to refuse connections', async () => ((await tryConnect(gwPort)) === 'ECONNREFUSED' ? true : undefined), 15_000, 50);
    const ready = await send(`${gwAdmin}/ready`).catch(() => undefined);
    if (ready) assert.equal(ready.status, 503, 'a draining gateway is not ready');
    assert.equal(gateway.exited, false, 'still draining while the request is in flight');

    held = false;
    const r = await inflight;
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(JSON.parse(r.text), { app: 'catalog-a', url: '/hold', held: true });
    assert.deepEqual(rawValues(r, 'x-request-id'), ['gw-drain-rid']);

    const exit = await withTimeout(gateway.wait(), 25_000, 'the gateway exit');
    assert.equal(exit.code, 0, `exit code; stderr: ${exit.stderr.slice(-1000)}`);
    assert.equal(exit.signal, null);
    catalogApp.handler = undefined;
  });
});
