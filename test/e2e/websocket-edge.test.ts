// WebSocket through the edge gateway: real `ws` clients and servers, the gateway in process with the
// upstreams registered directly in its store (plain TCP endpoints). Echo (text, binary, 1 MB), close
// codes both ways, an upstream vanishing, refusals (route not opted in, a plugin, an upstream's
// non-101 answer), garbage, timeouts, retries on connect failure, idle timeout, drain, and no
// tunnel left open afterwards.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { resolve } from 'node:path';
import { buildGatewayConfig } from '../../config/load.ts';
import { startGateway, type Gateway } from '../../gateway/gateway.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { tempDir } from '../helpers/cli.ts';
import { call } from '../helpers/mesh.ts';
import { metricValue } from '../helpers/mtls.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { connect, refused, startWsApp, type WsApp } from '../helpers/websocket.ts';

const PLUGINS = resolve(import.meta.dirname, '../../examples/plugins');

async function register(store: MemoryStore, service: string, id: string, port: number): Promise<void> {
  await store.registry.register({ service, id, address: '127.0.0.1', port, dc: 'local', zone: 'z1', metadata: {} }, 60_000);
}

function gatewayConfig(routes: unknown[], services: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return buildGatewayConfig(
    {
      node: { name: 'edge', zone: 'z1' },
      listeners: { http: { address: '127.0.0.1', port: 0 } },
      admin: { port: 0 },
      discovery: { resync: '500ms', stateDir: tempDir() },
      log: { level: 'silent', access: false },
      services,
      routes,
      ...extra,
    },
    'test:edge',
  );
}

/** Sends raw bytes on a new connection and collects everything until the server closes it. */
function raw(port: number, bytes: string | Buffer, timeoutMs = 10_000): Promise<string> {
  return new Promise((res, rej) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (out += d));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(t);
      res(out);
    });
    const t = setTimeout(() => {
      s.destroy();
      rej(new Error(`connection still open after ${timeoutMs} ms; got ${JSON.stringify(out.slice(0, 300))}`));
    }, timeoutMs);
    s.write(bytes);
  });
}

const HANDSHAKE = (path: string, host = 'edge.test') =>
  `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;

describe('WebSocket through the edge gateway', () => {
  const store = new MemoryStore();
  let app: WsApp;
  let gateway: Gateway;
  let ws = '';
  let base = '';
  let admin = '';
  let silent: net.Server;
  let rejecting: http.Server;

  before(async () => {
    app = await startWsApp('chat-1');
    // Accepts connections and never answers: the handshake must time out.
    silent = net.createServer((s) => s.on('error', () => {}));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    // Answers every upgrade with its own 401 and a body.
    rejecting = http.createServer((_q, res) => res.end('plain'));
    rejecting.on('upgrade', (_req, socket) => {
      socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-type: text/plain\r\ncontent-length: 12\r\nx-upstream: yes\r\nconnection: close\r\n\r\nno ticket!\r\n');
    });
    await new Promise<void>((r) => rejecting.listen(0, '127.0.0.1', () => r()));
    await register(store, 'chat', 'chat-1', app.port);
    await register(store, 'silent', 'silent-1', (silent.address() as net.AddressInfo).port);
    await register(store, 'rejecting', 'rejecting-1', (rejecting.address() as net.AddressInfo).port);
    await register(store, 'flaky', 'flaky-dead', await freePort());
    await register(store, 'flaky', 'flaky-live', app.port);
    await register(store, 'dead', 'dead-1', await freePort());
    gateway = await startGateway(
      gatewayConfig(
        [
          { name: 'chat', match: { pathPrefix: '/chat' }, service: 'chat', websocket: true },
          { name: 'idle', match: { pathPrefix: '/idle' }, service: 'chat', websocket: true, websocketIdleTimeout: '300ms' },
          { name: 'tenant', match: { pathPrefix: '/tenant' }, service: 'chat', websocket: true, plugins: [{ tenant: { tenants: ['acme'] } }] },
          { name: 'silent', match: { pathPrefix: '/silent' }, service: 'silent', websocket: true, timeout: '400ms' },
          { name: 'rejecting', match: { pathPrefix: '/rejecting' }, service: 'rejecting', websocket: true },
          { name: 'flaky', match: { pathPrefix: '/flaky' }, service: 'flaky', websocket: true },
          { name: 'dead', match: { pathPrefix: '/dead' }, service: 'dead', websocket: true },
          { name: 'plain', match: { pathPrefix: '/' }, service: 'chat' },
        ],
        {
          chat: { limits: { maxConcurrent: 1, maxPending: 0 } },
          silent: { retries: { attempts: 0 } },
          rejecting: {},
          flaky: { retries: { attempts: 2 }, balancer: 'round-robin', outlier: { consecutiveConnectFailures: 100 }, breaker: { consecutiveFailures: 100 } },
          dead: { retries: { attempts: 0 } },
        },
        { plugins: { dir: PLUGINS } },
      ),
      { store },
    );
    ws = `ws://127.0.0.1:${gateway.http.port}`;
    base = `http://127.0.0.1:${gateway.http.port}`;
    admin = `http://127.0.0.1:${gateway.admin.port}`;
    await waitFor('chat routable', async () => ((await call(`${base}/x`)).status === 200 ? true : undefined), 10_000);
  });

  after(async () => {
    await gateway?.stop();
    await app?.close();
    silent?.close();
    rejecting?.closeAllConnections();
    rejecting?.close();
    await store.close();
  });

  test('echo of text, binary and a 1 MB message; the upstream sees the forwarded handshake', async (t) => {
    const t0 = performance.now();
    const c = await connect(`${ws}/chat/room`, { 'x-request-id': 'ws-edge-1' });
    const upgradeMs = performance.now() - t0;
    c.ws.send('hello');
    const m1 = await c.next();
    assert.equal(m1.data.toString(), 'hello');
    assert.equal(m1.binary, false);
    c.ws.send(Buffer.from([0, 1, 2, 255]));
    const m2 = await c.next();
    assert.equal(m2.binary, true);
    assert.deepEqual([...m2.data], [0, 1, 2, 255]);
    const big = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    const t1 = performance.now();
    c.ws.send(big);
    const m3 = await c.next(20_000);
    const echoMs = performance.now() - t1;
    assert.ok(m3.data.equals(big), '1 MB echoed intact');
    const hs = app.handshakes.at(-1)!;
    assert.equal(hs['x-request-id'], 'ws-edge-1');
    assert.equal(hs['x-forwarded-proto'], 'http');
    assert.match(String(hs.traceparent), /^00-/);
    c.ws.close(1000);
    await c.closed();
    t.diagnostic(`upgrade through the edge: ${upgradeMs.toFixed(1)} ms; 1 MB echo: ${echoMs.toFixed(1)} ms`);
  });

  test('close codes both ways: client 4001 reaches the server, server 4002 reaches the client', async () => {
    const before = app.closes.length;
    const a = await connect(`${ws}/chat`);
    a.ws.close(4001, 'client says bye');
    assert.equal((await a.closed()).code, 4001);
    await waitFor('the app to see 4001', () => (app.closes.length > before ? true : undefined));
    assert.equal(app.closes.at(-1), 4001);
    const b = await connect(`${ws}/chat`);
    b.ws.send('close:4002');
    const c = await b.closed();
    assert.equal(c.code, 4002);
    assert.equal(c.reason, 'bye');
  });

  test('the upstream going away closes the client promptly', async () => {
    const c = await connect(`${ws}/chat`);
    const t0 = performance.now();
    c.ws.send('terminate');
    const closed = await c.closed(5000);
    assert.equal(closed.code, 1006); // no close frame: abnormal closure
    assert.ok(performance.now() - t0 < 3000, 'within the linger bound');
  });

  test('an open tunnel does not hold a concurrency slot (chat allows 1 in flight)', async () => {
    const a = await connect(`${ws}/chat`);
    const b = await connect(`${ws}/chat`);
    b.ws.send('second');
    assert.equal((await b.next()).data.toString(), 'second');
    a.ws.close();
    b.ws.close();
    await Promise.all([a.closed(), b.closed()]);
  });

  test('a route without websocket: true refuses the upgrade with 403 UPGRADE_NOT_ALLOWED and keeps serving', async () => {
    const r = await refused(`${ws}/plain`);
    assert.equal(r.status, 403);
    const body = JSON.parse(r.body);
    assert.equal(body.error.code, 'UPGRADE_NOT_ALLOWED');
    assert.match(body.error.message, /route "plain" does not allow WebSocket upgrades/);
    assert.equal(r.headers['x-meshgate-error'], 'UPGRADE_NOT_ALLOWED');
    assert.equal((await call(`${base}/plain`)).status, 200);
  });

  test('a plugin refuses the upgrade with its own 4xx JSON; allowed through with the header', async () => {
    const r = await refused(`${ws}/tenant`);
    assert.equal(r.status, 400);
    assert.equal(JSON.parse(r.body).error.code, 'TENANT_REQUIRED');
    const r2 = await refused(`${ws}/tenant`, { 'x-tenant': 'evil' });
    assert.equal(r2.status, 403);
    assert.equal(JSON.parse(r2.body).error.code, 'TENANT_UNKNOWN');
    const c = await connect(`${ws}/tenant`, { 'x-tenant': 'acme' });
    assert.equal(app.handshakes.at(-1)!['x-tenant-id'], 'acme'); // beforeUpstream ran on the handshake
    c.ws.send('t');
    assert.equal((await c.next()).data.toString(), 't');
    c.ws.close();
    await c.closed();
  });

  test("an upstream's non-101 answer is relayed with its body", async () => {
    const r = await refused(`${ws}/rejecting`);
    assert.equal(r.status, 401);
    assert.equal(r.body, 'no ticket!\r\n');
    assert.equal(r.headers['x-upstream'], 'yes');
  });

  test('no 101 within the route timeout: 504 UPSTREAM_TIMEOUT', async () => {
    const t0 = performance.now();
    const r = await refused(`${ws}/silent`);
    assert.equal(r.status, 504);
    assert.equal(JSON.parse(r.body).error.code, 'UPSTREAM_TIMEOUT');
    assert.ok(performance.now() - t0 < 5000);
  });

  test('connect failures: retried on another endpoint; 502 UPSTREAM_UNAVAILABLE when none is left', async () => {
    for (let i = 0; i < 4; i++) {
      const c = await connect(`${ws}/flaky`);
      c.ws.close();
      await c.closed();
    }
    const r = await refused(`${ws}/dead`);
    assert.equal(r.status, 502);
    assert.equal(JSON.parse(r.body).error.code, 'UPSTREAM_UNAVAILABLE');
  });

  test('garbage after the handshake: the upstream drops it and the connection closes; bad upgrades are 400', async () => {
    const port = gateway.http.port;
    const out = await raw(port, HANDSHAKE('/chat') + '\x00\xff\xfe garbage that is no frame');
    assert.match(out, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    // A handshake with a body, and a non-GET one.
    const post = await raw(port, 'POST /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 2\r\n\r\nhi');
    assert.match(post, /^HTTP\/1\.1 400 /);
    assert.match(post, /"code":"BAD_REQUEST"/);
    // Malformed header lines after an upgrade request line: node's parser answers 400.
    const bad = await raw(port, 'GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nBad Header\r\n\r\n');
    assert.match(bad, /^HTTP\/1\.1 400 /);
    assert.equal((await call(`${base}/still-up`)).status, 200);
  });

  test('another upgrade token (h2c) is ignored: served as a plain request, then the connection closes', async () => {
    const out = await raw(gateway.http.port, 'GET /plain HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n');
    assert.match(out, /^HTTP\/1\.1 200 /);
    assert.match(out, /plain chat-1/);
    assert.match(out, /\r\nConnection: close\r\n/i);
    const withBody = await raw(gateway.http.port, 'POST /plain HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nhi');
    assert.match(withBody, /^HTTP\/1\.1 400 /);
  });

  test('an idle tunnel is closed after websocketIdleTimeout', async () => {
    const c = await connect(`${ws}/idle`);
    c.ws.send('x');
    await c.next();
    const t0 = performance.now();
    const closed = await c.closed(5000);
    assert.equal(closed.code, 1006);
    assert.ok(performance.now() - t0 >= 250, 'not before the idle timeout');
  });

  test('metrics: upgrades by result, and no tunnel left open', async () => {
    await waitFor('open tunnels back to 0', async () => {
      const m = (await call(`${admin}/metrics`)).body;
      return metricValue(m, 'meshgate_websocket_tunnels_open', { direction: 'edge', service: 'chat' }) === 0 ? m : undefined;
    });
    await waitFor('the app to hold no socket', () => (app.sockets.size === 0 ? true : undefined));
    const m = (await call(`${admin}/metrics`)).body;
    assert.ok(metricValue(m, 'meshgate_websocket_upgrades_total', { direction: 'edge', service: 'chat', result: 'switched' }) >= 8);
    assert.ok(metricValue(m, 'meshgate_websocket_upgrades_total', { direction: 'edge', service: 'rejecting', result: 'rejected' }) >= 1);
    assert.ok(metricValue(m, 'meshgate_websocket_upgrades_total', { direction: 'edge', service: 'chat', result: 'local' }) >= 3);
    assert.ok(metricValue(m, 'meshgate_requests_total', { direction: 'edge', route: 'chat', status_code: '101' }) >= 1);
  });
});

describe('WebSocket tunnels at shutdown', () => {
  test('an open tunnel is closed when the drain timeout passes', async () => {
    const store = new MemoryStore();
    const app = await startWsApp('drain-1');
    await register(store, 'chat', 'chat-1', app.port);
    const gw = await startGateway(gatewayConfig([{ name: 'chat', match: { pathPrefix: '/' }, service: 'chat', websocket: true }], { chat: {} }, { drainTimeout: '300ms' }), { store });
    try {
      const url = `ws://127.0.0.1:${gw.http.port}/`;
      const c = await waitFor('chat routable', async () => connect(url).catch(() => undefined), 10_000);
      c.ws.send('x');
      await c.next();
      const t0 = performance.now();
      await gw.stop();
      const stopMs = performance.now() - t0;
      assert.equal((await c.closed(5000)).code, 1006);
      assert.ok(stopMs < 3000, `stopped in ${stopMs.toFixed(0)} ms`);
      await waitFor('the app to hold no socket', () => (app.sockets.size === 0 ? true : undefined), 5000);
    } finally {
      await gw.stop();
      await app.close();
      await store.close();
    }
  });
});
