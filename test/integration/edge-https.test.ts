// The edge's HTTPS listener with real TLS: HTTP/2 and HTTP/1.1 on one port by ALPN, certificates
// by SNI, TLS 1.2 as the floor, certificate files reloaded on change, and the plain listener's
// redirect to HTTPS.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { buildGatewayConfig } from '../../config/load.ts';
import { startGateway, type Gateway } from '../../gateway/gateway.ts';
import { selfSignedCertificate } from '../../gateway/listeners/dev-certificate.ts';
import { createLogger } from '../../mesh-proxy/observe/log.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { tempDir } from '../helpers/cli.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';

let app: TestApp;
let gw: Gateway;
let store: MemoryStore;
let dir: string;
let httpsPort: number;
let httpPort: number;

const certFile = (n: string) => join(dir, `${n}.pem`);
const keyFile = (n: string) => join(dir, `${n}.key`);

async function writePair(name: string, hosts: string[], cn = hosts[0]): Promise<void> {
  const pair = await selfSignedCertificate(hosts, 1, cn);
  writeFileSync(keyFile(name), pair.key);
  writeFileSync(certFile(name), pair.cert);
}

/** The certificate the server presents for `servername`, and the negotiated ALPN protocol. */
function handshake(servername: string | undefined, opts: tls.ConnectionOptions = {}): Promise<{ cn: string; alpn: string | false; version: string | null }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: httpsPort, servername, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'], ...opts }, () => {
      const cert = s.getPeerX509Certificate();
      const cn = cert ? (/CN=([^\n,]+)/.exec(cert.subject)?.[1] ?? '') : '';
      const r = { cn, alpn: s.alpnProtocol ?? false, version: s.getProtocol() };
      s.end();
      resolve(r);
    });
    s.on('error', reject);
  });
}

before(async () => {
  app = await startApp('catalog');
  dir = tempDir();
  await writePair('default', ['localhost', '127.0.0.1'], 'default.test');
  await writePair('api', ['api.example.com'], 'api.example.com');
  await writePair('wild', ['*.example.org'], 'wild.example.org');
  store = new MemoryStore();
  await store.registry.register({ service: 'catalog', id: 'c1', address: '127.0.0.1', port: app.port, dc: 'local', zone: '', metadata: {} }, 60_000);
  [httpsPort, httpPort] = await Promise.all([freePort(), freePort()]);
  const config = buildGatewayConfig(
    {
      listeners: {
        http: { address: '127.0.0.1', port: httpPort, redirectToHttps: true },
        https: {
          address: '127.0.0.1',
          port: httpsPort,
          reloadEvery: '200ms',
          certificates: [
            { cert: certFile('default'), key: keyFile('default') },
            { hosts: ['api.example.com'], cert: certFile('api'), key: keyFile('api') },
            { hosts: ['*.example.org'], cert: certFile('wild'), key: keyFile('wild') },
          ],
        },
      },
      admin: { port: 0 },
      discovery: { stateDir: dir },
      log: { level: 'silent', access: false },
      services: { catalog: {} },
      routes: [{ name: 'catalog', match: { pathPrefix: '/' }, service: 'catalog' }],
    },
    'test',
    {},
  );
  gw = await startGateway(config, { store, log: createLogger({ level: 'silent' }, {}) });
});

after(async () => {
  await gw?.stop();
  await app?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('1. HTTP/2 by ALPN: GET and a POST body reach the HTTP/1.1 upstream, with https as x-forwarded-proto', async () => {
  const session = http2.connect(`https://127.0.0.1:${httpsPort}`, { rejectUnauthorized: false });
  try {
    const get = await h2(session, { ':path': '/items?x=1', ':method': 'GET' });
    assert.equal(get.status, 200);
    assert.equal(get.headers['x-request-id'] !== undefined, true);
    const seen = app.received.at(-1)!;
    assert.equal(seen.url, '/items?x=1');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers.host, `127.0.0.1:${httpsPort}`);
    assert.ok(!Object.keys(seen.headers).some((k) => k.startsWith(':')), 'no pseudo-header upstream');

    const body = 'x'.repeat(100_000);
    const post = await h2(session, { ':path': '/orders', ':method': 'POST', 'content-type': 'text/plain' }, body);
    assert.equal(post.status, 200);
    assert.equal(app.received.at(-1)!.body.length, body.length);

    // 2. many concurrent streams on one session
    const all = await Promise.all(Array.from({ length: 50 }, (_, i) => h2(session, { ':path': `/n/${i}` })));
    assert.ok(all.every((r) => r.status === 200));
  } finally {
    session.close();
  }
});

test('3. HTTP/1.1 over TLS on the same port; ALPN picks h2 or http/1.1 as offered', async () => {
  const res = await new Promise<number>((resolve, reject) => {
    https.get(`https://127.0.0.1:${httpsPort}/h1`, { rejectUnauthorized: false, agent: false }, (r) => {
      r.resume();
      r.on('end', () => resolve(r.statusCode ?? 0));
    }).on('error', reject);
  });
  assert.equal(res, 200);
  assert.equal((await handshake('localhost')).alpn, 'h2');
  assert.equal((await handshake('localhost', { ALPNProtocols: ['http/1.1'] })).alpn, 'http/1.1');
});

test('4. SNI picks the certificate: exact, wildcard one label deep, default otherwise', async () => {
  assert.equal((await handshake('api.example.com')).cn, 'api.example.com');
  assert.equal((await handshake('shop.example.org')).cn, 'wild.example.org');
  assert.equal((await handshake('a.b.example.org')).cn, 'default.test', 'a wildcard covers one label only');
  assert.equal((await handshake('unknown.test')).cn, 'default.test');
  assert.equal((await handshake(undefined)).cn, 'default.test');
});

test('5. TLS below 1.2 is refused', async () => {
  await assert.rejects(handshake('localhost', { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }));
  assert.match((await handshake('localhost')).version ?? '', /TLSv1\.[23]/);
});

test('6. a replaced certificate file is served without a restart; a broken one leaves the old in place', async () => {
  const before = new X509Certificate((await peerPem('api.example.com'))).serialNumber;
  await writePair('api', ['api.example.com'], 'api.example.com');
  const started = Date.now();
  const after = await waitFor('the new api certificate', async () => {
    const serial = new X509Certificate(await peerPem('api.example.com')).serialNumber;
    return serial !== before ? serial : undefined;
  }, 15_000, 100);
  process.stdout.write(`# certificate reload observed after ${Date.now() - started} ms\n`);
  writeFileSync(certFile('api'), '-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n');
  await new Promise((r) => setTimeout(r, 800));
  assert.equal(new X509Certificate(await peerPem('api.example.com')).serialNumber, after, 'the previous certificate keeps serving');
  const metrics = await (await request(`http://127.0.0.1:${gw.admin.port}/metrics`)).body.text();
  assert.match(metrics, /meshgate_tls_certificate_reloads_total\{result="applied"\} [1-9]/);
  assert.match(metrics, /meshgate_tls_certificate_reloads_total\{result="rejected"\} [1-9]/);
});

test('7. the plain listener redirects to https with 308, keeping path and query; ACME challenges are routed', async () => {
  const res = await request(`http://127.0.0.1:${httpPort}/items?page=2`, { headers: { host: 'shop.example.org' } });
  await res.body.text();
  assert.equal(res.statusCode, 308);
  assert.equal(res.headers.location, `https://shop.example.org:${httpsPort}/items?page=2`);
  const acme = await request(`http://127.0.0.1:${httpPort}/.well-known/acme-challenge/token1`);
  await acme.body.text();
  assert.equal(acme.statusCode, 200);
  assert.equal(app.received.at(-1)!.url, '/.well-known/acme-challenge/token1');
});

test('8. garbage on the TLS port and a reset h2 stream do not disturb the listener', async () => {
  await new Promise<void>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: httpsPort, rejectUnauthorized: false }, () => {
      s.write('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n');
    });
    s.on('data', () => {});
    s.on('close', () => resolve());
    s.on('error', () => resolve());
    setTimeout(() => s.destroy(), 2000);
  });
  const net = await import('node:net');
  await new Promise<void>((resolve) => {
    const s = net.connect(httpsPort, '127.0.0.1', () => s.write(Buffer.alloc(512, 7)));
    s.on('close', () => resolve());
    s.on('error', () => resolve());
    s.resume();
  });
  const session = http2.connect(`https://127.0.0.1:${httpsPort}`, { rejectUnauthorized: false });
  try {
    const stream = session.request({ ':path': '/upload', ':method': 'POST' });
    stream.write('partial');
    stream.on('error', () => {});
    stream.close(http2.constants.NGHTTP2_CANCEL);
    const ok = await h2(session, { ':path': '/after' });
    assert.equal(ok.status, 200);
  } finally {
    session.close();
  }
});

function h2(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const s = session.request(headers);
    let data = '';
    let h: http2.IncomingHttpHeaders = {};
    s.on('response', (x) => (h = x));
    s.setEncoding('utf8');
    s.on('data', (c: string) => (data += c));
    s.on('end', () => resolve({ status: Number(h[':status']), headers: h, body: data }));
    s.on('error', reject);
    s.end(body);
  });
}

function peerPem(servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: httpsPort, servername, rejectUnauthorized: false }, () => {
      const pem = s.getPeerX509Certificate()!.toString();
      s.end();
      resolve(pem);
    });
    s.on('error', reject);
  });
}
