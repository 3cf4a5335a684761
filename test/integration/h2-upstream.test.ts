// HTTP/2 toward upstreams: an HTTP/1.1 client's request to an h2c or h2 (TLS) service goes upstream
// as HTTP/2 over pooled, multiplexed sessions and comes back as HTTP/1.1; an HTTP/2 client with
// prior knowledge (h2c) is served on the plain listener; trailers are relayed.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import type { Gateway } from '../../gateway/gateway.ts';
import { selfSignedCertificate } from '../../gateway/listeners/dev-certificate.ts';
import { startTestGateway, stopAll } from '../helpers/mesh.ts';

interface H2Upstream {
  port: number;
  /** Distinct client sessions (connections) seen. */
  sessions: number;
  /** Streams open at once, at most. */
  maxConcurrent: number;
  close(): Promise<void>;
}

/** An HTTP/2 server (h2c, or TLS with `cert`) that echoes and can answer with trailers. */
async function startH2Upstream(name: string, cert?: { cert: string; key: string }): Promise<H2Upstream> {
  const server = cert ? http2.createSecureServer({ ...cert, allowHTTP1: false }) : http2.createServer();
  const up: H2Upstream = { port: 0, sessions: 0, maxConcurrent: 0, close: async () => {} };
  let open = 0;
  server.on('session', () => up.sessions++);
  server.on('stream', (stream, headers) => {
    open++;
    up.maxConcurrent = Math.max(up.maxConcurrent, open);
    stream.once('close', () => open--);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const path = String(headers[':path']);
      const delay = path.includes('/slow') ? 150 : 0;
      setTimeout(() => {
        if (stream.destroyed) return;
        const trailers = path.includes('/trailers');
        stream.respond({ ':status': 200, 'content-type': 'application/json', 'x-upstream': name }, trailers ? { waitForTrailers: true } : {});
        if (trailers) stream.once('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc123', 'x-count': '2' }));
        stream.end(
          JSON.stringify({
            app: name,
            method: headers[':method'],
            path,
            authority: headers[':authority'],
            scheme: headers[':scheme'],
            te: headers.te ?? null,
            connection: headers.connection ?? null,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      }, delay);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  up.port = (server.address() as AddressInfo).port;
  up.close = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      // Sessions the gateway keeps open would hold close() back.
      setTimeout(r, 500).unref();
    });
  return up;
}

function h2Request(port: number, headers: http2.OutgoingHttpHeaders, body?: string): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string; trailers: http2.IncomingHttpHeaders | undefined }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request(headers, { endStream: body === undefined });
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    let data = '';
    stream.on('response', (h) => (responseHeaders = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => (data += c));
    stream.on('end', () => {
      session.close();
      resolve({ status: Number(responseHeaders[':status']), headers: responseHeaders, body: data, trailers });
    });
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

describe('HTTP/2 toward upstreams', () => {
  let store: MemoryStore;
  let h2c: H2Upstream;
  let h2tls: H2Upstream;
  let gw: Gateway;
  let base: string;
  let port: number;
  let cert: { cert: string; key: string };

  before(async () => {
    store = new MemoryStore();
    cert = await selfSignedCertificate(['localhost', '127.0.0.1']);
    h2c = await startH2Upstream('h2c-app');
    h2tls = await startH2Upstream('h2-app', cert);
    const reg = (service: string, id: string, p: number, extra: Record<string, unknown> = {}) =>
      store.registry.register({ service, id, address: '127.0.0.1', port: p, dc: 'local', zone: 'z1', metadata: {}, ...extra }, 60_000);
    await reg('plain-h2c', 'a', h2c.port);
    await reg('registered-h2', 'b', h2c.port, { protocol: 'h2' });
    await reg('tls-h2', 'c', h2tls.port);
    gw = await startTestGateway(
      store,
      { 'plain-h2c': { protocol: 'h2c', retries: { attempts: 0 } }, 'registered-h2': {}, 'tls-h2': { protocol: 'h2', tls: { ca: cert.cert, serverName: 'localhost' } } },
      [
        { name: 'h2c', match: { pathPrefix: '/h2c' }, service: 'plain-h2c' },
        { name: 'registered', match: { pathPrefix: '/registered' }, service: 'registered-h2' },
        { name: 'tls', match: { pathPrefix: '/tls' }, service: 'tls-h2' },
      ],
    );
    port = gw.http.port;
    base = `http://127.0.0.1:${port}`;
  });

  after(async () => {
    await stopAll(gw);
    await Promise.all([h2c.close(), h2tls.close()]);
    await store.close();
  });

  test('an HTTP/1.1 request to an h2c service goes upstream as HTTP/2 and returns as HTTP/1.1', async () => {
    const res = await request(`${base}/h2c/items?x=1`, { method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain' } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['x-upstream'], 'h2c-app');
    const body = (await res.body.json()) as Record<string, unknown>;
    assert.equal(body.method, 'POST');
    assert.equal(body.path, '/h2c/items?x=1');
    assert.equal(body.body, 'hello');
    assert.equal(body.scheme, 'http');
    assert.equal(body.connection, null, 'no connection-specific header crosses into HTTP/2');
    assert.match(String(body.authority), /127\.0\.0\.1/);
  });

  test('an instance that registered protocol h2 is reached over HTTP/2 without per-service config', async () => {
    const res = await request(`${base}/registered/x`);
    assert.equal(res.statusCode, 200);
    const body = (await res.body.json()) as Record<string, unknown>;
    assert.equal(body.app, 'h2c-app');
  });

  test('an h2 (TLS) service is reached over HTTP/2 negotiated by ALPN', async () => {
    const res = await request(`${base}/tls/secure`);
    const text = await res.body.text();
    assert.equal(res.statusCode, 200, text);
    const body = JSON.parse(text) as Record<string, unknown>;
    assert.equal(body.app, 'h2-app');
    assert.equal(body.scheme, 'https');
  });

  test('concurrent requests share one multiplexed session rather than a connection each', async () => {
    const before = h2c.sessions;
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => request(`${base}/h2c/slow/${i}`).then(async (r) => ({ status: r.statusCode, body: await r.body.text() }))));
    for (const r of results) assert.equal(r.status, 200, r.body);
    assert.ok(h2c.maxConcurrent >= 10, `streams were multiplexed (at most ${h2c.maxConcurrent} open at once)`);
    assert.ok(h2c.sessions - before <= 1, `${h2c.sessions - before} new sessions for 40 concurrent requests`);
  });

  test('response trailers reach an HTTP/2 client', async () => {
    const res = await h2Request(port, { ':method': 'GET', ':path': '/h2c/trailers', ':authority': 'example.test' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-upstream'], 'h2c-app');
    assert.deepEqual({ checksum: res.trailers?.['x-checksum'], count: res.trailers?.['x-count'] }, { checksum: 'abc123', count: '2' });
  });

  test('an HTTP/2 client with prior knowledge (h2c) is served on the plain listener', async () => {
    const res = await h2Request(port, { ':method': 'POST', ':path': '/h2c/echo', ':authority': 'example.test', 'content-type': 'text/plain' }, 'from h2c');
    assert.equal(res.status, 200);
    const body = JSON.parse(res.body) as Record<string, unknown>;
    assert.equal(body.body, 'from h2c');
    assert.equal(body.authority, 'example.test');
    assert.equal(res.headers['x-request-id']?.length ? true : false, true, 'the edge echoes a request id');
  });

  test('an HTTP/1.1 client still gets HTTP/1.1 on the same plain port', async () => {
    const res = await request(`${base}/h2c/plain`);
    assert.equal(res.statusCode, 200);
    await res.body.dump();
  });

  test('a stream the upstream refuses (REFUSED_STREAM) was not processed: even a POST is retried', async () => {
    const server = http2.createServer();
    let refused = 0;
    server.on('stream', (stream) => {
      stream.on('error', () => {}); // the refused stream reports its own reset
      if (refused === 0) {
        refused++;
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      stream.resume();
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'x-upstream': 'second-stream' });
        stream.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    await store.registry.register({ service: 'refusing', id: 'r', address: '127.0.0.1', port: (server.address() as AddressInfo).port, dc: 'local', zone: 'z1', metadata: {}, protocol: 'h2' }, 60_000);
    const gw2 = await startTestGateway(store, { refusing: {} }, [{ name: 'refusing', service: 'refusing' }], 'edge-refused');
    try {
      const res = await request(`http://127.0.0.1:${gw2.http.port}/orders`, { method: 'POST', body: 'once' });
      assert.equal(await res.body.text(), 'ok');
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['x-upstream'], 'second-stream');
      assert.equal(refused, 1);
    } finally {
      await stopAll(gw2);
      await new Promise<void>((r) => {
        server.close(() => r());
        setTimeout(r, 500).unref();
      });
    }
  });

  test('an unreachable h2c endpoint is a clean 502, and the listener keeps serving', async () => {
    await store.registry.register({ service: 'dead-h2', id: 'd', address: '127.0.0.1', port: 1, dc: 'local', zone: 'z1', metadata: {}, protocol: 'h2' }, 60_000);
    const gw2 = await startTestGateway(store, { 'dead-h2': { retries: { attempts: 0 } } }, [{ name: 'dead', service: 'dead-h2' }], 'edge2');
    try {
      const res = await request(`http://127.0.0.1:${gw2.http.port}/x`);
      const body = (await res.body.json()) as { error: { code: string } };
      assert.equal(res.statusCode, 502);
      assert.equal(body.error.code, 'UPSTREAM_UNAVAILABLE');
    } finally {
      await stopAll(gw2);
    }
    const ok = await request(`${base}/h2c/after`);
    assert.equal(ok.statusCode, 200);
    await ok.body.dump();
  });
});
