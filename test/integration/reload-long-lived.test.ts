// A reload never cuts a long-lived connection: a WebSocket opened before it keeps echoing after it,
// and an HTTP/2 stream whose response is still streaming completes intact, while new requests
// already see the new configuration.
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stringify } from 'yaml';
import { loadGatewayConfig } from '../../config/load.ts';
import { startGateway, type Gateway } from '../../gateway/gateway.ts';
import { selfSignedCertificate } from '../../gateway/listeners/dev-certificate.ts';
import { createLogger } from '../../mesh-proxy/observe/log.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { tempDir } from '../helpers/cli.ts';
import { freePort } from '../helpers/ports.ts';
import { connect, startWsApp, type WsApp } from '../helpers/websocket.ts';

let ws: WsApp;
let slow: http.Server;
let gw: Gateway;
let store: MemoryStore;
let dir: string;
let file: string;
let httpPort: number;
let httpsPort: number;

function config(extraHeader: string) {
  return {
    listeners: {
      http: { address: '127.0.0.1', port: httpPort },
      https: { address: '127.0.0.1', port: httpsPort, certificates: [{ cert: 'cert.pem', key: 'key.pem' }] },
    },
    admin: { port: 0 },
    discovery: { stateDir: dir },
    log: { level: 'silent', access: false },
    watch: false,
    services: { chat: {}, slow: {} },
    routes: [
      { name: 'chat', match: { pathPrefix: '/chat' }, service: 'chat', websocket: true },
      { name: 'slow', match: { pathPrefix: '/slow' }, service: 'slow', plugins: [{ headers: { response: { set: { 'x-config': extraHeader } } } }] },
    ],
  };
}

before(async () => {
  dir = tempDir('meshgate-reload-ll-');
  const pair = await selfSignedCertificate(['127.0.0.1'], 1);
  writeFileSync(join(dir, 'cert.pem'), pair.cert);
  writeFileSync(join(dir, 'key.pem'), pair.key);
  ws = await startWsApp('chat');
  // A response that streams a chunk every 100 ms for 2 s.
  slow = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    let n = 0;
    const t = setInterval(() => {
      res.write(`chunk-${n}\n`);
      if (++n === 20) {
        clearInterval(t);
        res.end();
      }
    }, 100);
  });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', () => r()));
  store = new MemoryStore();
  await store.registry.register({ service: 'chat', id: 'c1', address: '127.0.0.1', port: ws.port, dc: 'local', zone: '', metadata: {} }, 60_000);
  await store.registry.register({ service: 'slow', id: 's1', address: '127.0.0.1', port: (slow.address() as { port: number }).port, dc: 'local', zone: '', metadata: {} }, 60_000);
  [httpPort, httpsPort] = await Promise.all([freePort(), freePort()]);
  file = join(dir, 'gateway.yaml');
  writeFileSync(file, stringify(config('one')));
  gw = await startGateway(await loadGatewayConfig(file, {}), { store, configFile: file, log: createLogger({ level: 'silent' }, {}) });
});

after(async () => {
  await gw?.stop();
  await ws?.close();
  slow?.closeAllConnections();
  await new Promise<void>((r) => slow?.close(() => r()));
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('an open WebSocket and a streaming HTTP/2 response survive a reload; new requests see the new config', async () => {
  // 1. a WebSocket and an HTTP/2 stream, both open before the reload
  const client = await connect(`ws://127.0.0.1:${httpPort}/chat`);
  client.ws.send('before');
  assert.equal((await client.next()).data.toString(), 'before');
  const session = http2.connect(`https://127.0.0.1:${httpsPort}`, { rejectUnauthorized: false });
  const streamed = new Promise<{ headers: http2.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const s = session.request({ ':path': '/slow/x' });
    let headers: http2.IncomingHttpHeaders = {};
    let body = '';
    s.on('response', (h) => (headers = h));
    s.setEncoding('utf8');
    s.on('data', (c: string) => (body += c));
    s.on('end', () => resolve({ headers, body }));
    s.on('error', reject);
    s.end();
  });
  await new Promise((r) => setTimeout(r, 300));
  // 2. the reload, mid-stream
  writeFileSync(file, stringify(config('two')));
  const r = await gw.reload();
  assert.equal(r.applied, true);
  // 3. the WebSocket still echoes; the stream completes with the config it started under
  client.ws.send('after');
  assert.equal((await client.next()).data.toString(), 'after');
  const done = await streamed;
  assert.equal(done.headers[':status'], 200);
  assert.equal(done.headers['x-config'], 'one');
  assert.equal(done.body.split('\n').filter(Boolean).length, 20);
  // 4. a new stream on the same session sees the new config
  const fresh = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    const s = session.request({ ':path': '/slow/y' });
    s.on('response', (h) => resolve(h));
    s.on('error', reject);
    s.resume();
    s.end();
  });
  assert.equal(fresh['x-config'], 'two');
  client.ws.close(1000);
  await client.closed();
  session.close();
});
