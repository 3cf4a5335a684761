// The traffic built-ins on real HTTP traffic through a gateway: a chunked upload over the limit is
// cut with 413 (and one the client leaves is cut upstream at once), CORS headers ride on another
// plugin's 403, header transforms and request ids reach the upstream, and a preflight never does.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { buildGatewayConfig } from '../../config/load.ts';
import { startGateway, type Gateway } from '../../gateway/gateway.ts';
import { createLogger } from '../../mesh-proxy/observe/log.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { tempDir } from '../helpers/cli.ts';
import { freePort } from '../helpers/ports.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';

let app: TestApp;
let uploads: http.Server;
/** What the uploads upstream saw of each request body: bytes, and whether it ended or was cut. */
const uploadSeen: Array<{ bytes: number; outcome?: 'end' | 'aborted' }> = [];
let gw: Gateway;
let store: MemoryStore;
let base: string;

before(async () => {
  app = await startApp('app');
  store = new MemoryStore();
  await store.registry.register({ service: 'app', id: 'a1', address: '127.0.0.1', port: app.port, dc: 'local', zone: '', metadata: {} }, 60_000);
  uploads = http.createServer((req, res) => {
    const seen: (typeof uploadSeen)[number] = { bytes: 0 };
    uploadSeen.push(seen);
    req.on('data', (c: Buffer) => (seen.bytes += c.length));
    req.on('end', () => {
      seen.outcome ??= 'end';
      res.end('ok');
    });
    req.on('close', () => (seen.outcome ??= 'aborted'));
  });
  await new Promise<void>((r) => uploads.listen(0, '127.0.0.1', r));
  const uploadsPort = (uploads.address() as import('node:net').AddressInfo).port;
  await store.registry.register({ service: 'uploads', id: 'u1', address: '127.0.0.1', port: uploadsPort, dc: 'local', zone: '', metadata: {} }, 60_000);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const cors = { cors: { origins: ['https://app.example.com'] } };
  gw = await startGateway(
    buildGatewayConfig(
      {
        listeners: { http: { address: '127.0.0.1', port } },
        admin: { port: 0 },
        discovery: { stateDir: tempDir() },
        log: { level: 'silent', access: false },
        services: { app: {}, uploads: {} },
        plugins: { global: [cors] },
        routes: [
          { name: 'upload', match: { pathPrefix: '/upload' }, service: 'app', plugins: [{ 'request-size-limit': { maxBytes: 1000 } }] },
          { name: 'stream-upload', match: { pathPrefix: '/stream-upload' }, service: 'uploads', plugins: [{ 'request-size-limit': { maxBytes: 1_000_000 } }] },
          { name: 'private', match: { pathPrefix: '/private' }, service: 'app', plugins: [{ 'ip-filter': { allow: ['10.0.0.0/8'] } }] },
          {
            name: 'shaped',
            match: { pathPrefix: '/shaped' },
            service: 'app',
            plugins: [
              { 'request-id': { trustIncoming: false, header: 'x-correlation-id' } },
              { headers: { request: { set: { 'x-route': '%ROUTE%' }, remove: ['x-debug'] }, response: { set: { 'x-served-by': 'meshgate' } } } },
            ],
          },
        ],
      },
      'test',
      {},
    ),
    { store, log: createLogger({ level: 'silent' }, {}) },
  );
});

after(async () => {
  await gw?.stop();
  await app?.close();
  uploads?.closeAllConnections();
  await new Promise((r) => uploads?.close(r));
  await store?.close();
});

test('1. a chunked upload over the limit gets 413 PAYLOAD_TOO_LARGE and the connection closes; one within it passes', async () => {
  const result = await new Promise<{ status: number; body: string; closed: boolean }>((resolve, reject) => {
    const req = http.request(`${base}/upload`, { method: 'POST', agent: false, headers: { 'transfer-encoding': 'chunked' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, closed: res.headers.connection === 'close' }));
    });
    req.on('error', reject);
    let sent = 0;
    const timer = setInterval(() => {
      if (sent >= 20 || req.destroyed) {
        clearInterval(timer);
        req.end();
        return;
      }
      sent++;
      req.write(Buffer.alloc(200, 97));
    }, 10);
  });
  assert.equal(result.status, 413);
  assert.equal(JSON.parse(result.body).error.code, 'PAYLOAD_TOO_LARGE');
  assert.equal(result.closed, true);
  const small = await request(`${base}/upload`, { method: 'POST', body: Buffer.alloc(900, 98) });
  await small.body.text();
  assert.equal(small.statusCode, 200);
  assert.equal(app.received.at(-1)!.body.length, 900);
});

test('1b. a client that leaves mid-upload through a size limit: the upstream request is cut at once, not left open until the 15 s timeout', async () => {
  const req = http.request(`${base}/stream-upload`, { method: 'POST', agent: false, headers: { 'transfer-encoding': 'chunked' } });
  req.on('error', () => {});
  req.write(Buffer.alloc(300, 97));
  // The upstream has the first bytes: the body is streaming through the limit.
  const deadline = Date.now() + 10_000;
  while (!(uploadSeen.at(-1)?.bytes === 300) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(uploadSeen.at(-1)?.bytes, 300);
  const started = Date.now();
  req.destroy();
  // Generous bound, well under the route's 15 s request timeout (measured: tens of milliseconds).
  while (uploadSeen.at(-1)?.outcome === undefined && Date.now() - started < 8_000) await new Promise((r) => setTimeout(r, 20));
  assert.equal(uploadSeen.at(-1)?.outcome, 'aborted');
});

test('2. CORS headers ride on the 403 another plugin answered; a preflight never reaches the upstream', async () => {
  const res = await request(`${base}/private/x`, { headers: { origin: 'https://app.example.com' } });
  const body = (await res.body.json()) as { error: { code: string } };
  assert.equal(res.statusCode, 403);
  assert.equal(body.error.code, 'FORBIDDEN');
  assert.equal(res.headers['access-control-allow-origin'], 'https://app.example.com');
  const before = app.received.length;
  const pre = await request(`${base}/private/x`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' } });
  await pre.body.text();
  assert.equal(pre.statusCode, 204);
  assert.equal(pre.headers['content-length'], undefined, 'no Content-Length on a 204 (RFC 9110 §8.6)');
  assert.equal(pre.headers['access-control-allow-origin'], 'https://app.example.com');
  assert.equal(app.received.length, before);
});

test('3. header transforms and a fresh request id reach the upstream; the client sees the id it was given', async () => {
  const res = await request(`${base}/shaped/a`, { headers: { 'x-request-id': 'chosen-by-client', 'x-debug': '1' } });
  await res.body.text();
  assert.equal(res.statusCode, 200);
  const seen = app.received.at(-1)!;
  assert.equal(seen.headers['x-route'], 'shaped');
  assert.equal(seen.headers['x-debug'], undefined);
  const id = seen.headers['x-request-id'] as string;
  assert.notEqual(id, 'chosen-by-client');
  assert.equal(seen.headers['x-correlation-id'], id);
  assert.equal(res.headers['x-request-id'], id);
  assert.equal(res.headers['x-correlation-id'], id);
  assert.equal(res.headers['x-served-by'], 'meshgate');
});
