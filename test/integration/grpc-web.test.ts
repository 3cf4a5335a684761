// gRPC-Web at the edge, with requests built per PROTOCOL-WEB.md (binary and base64 text) against a
// real grpc-js server: translated to gRPC upstream, answers re-framed with the trailers as the last
// frame; CORS for browsers; malformed input refused with a clear status while the gateway serves on.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import * as loader from '@grpc/proto-loader';
import { request } from 'undici';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import type { Gateway } from '../../gateway/gateway.ts';
import { decodeGrpcWebResponse } from '../../gateway/grpc-web/response-encoder.ts';
import { startEchoServer, type EchoServer } from '../helpers/grpc.ts';
import { startTestGateway, stopAll } from '../helpers/mesh.ts';

type Codec = { requestSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): Record<string, unknown> };
const def = loader.loadSync(resolve(import.meta.dirname, '../fixtures/grpc/echo.proto'), { keepCase: true, defaults: true });
const methods = def['meshgate.test.Echo'] as unknown as Record<string, Codec>;

function frame(method: string, msg: unknown): Buffer {
  const payload = methods[method].requestSerialize(msg);
  const header = Buffer.alloc(5);
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

describe('gRPC-Web at the edge', () => {
  let store: MemoryStore;
  let echo: EchoServer;
  let gw: Gateway;
  let base: string;

  before(async () => {
    store = new MemoryStore();
    echo = await startEchoServer();
    await store.registry.register({ service: 'echo', id: 'e1', address: '127.0.0.1', port: echo.port, dc: 'local', zone: 'z1', metadata: {}, protocol: 'h2' }, 60_000);
    gw = await startTestGateway(store, { echo: { retries: { attempts: 0 } } }, [
      {
        name: 'echo',
        match: { pathPrefix: '/meshgate.test.Echo' },
        service: 'echo',
        grpc: true,
        plugins: [{ cors: { origins: ['https://app.example'], exposeHeaders: ['grpc-status', 'grpc-message'] } }],
      },
    ]);
    base = `http://127.0.0.1:${gw.http.port}/meshgate.test.Echo`;
  });

  after(async () => {
    await stopAll(gw);
    await echo.close();
    await store.close();
  });

  async function call(method: string, body: Buffer | string, contentType: string, headers: Record<string, string> = {}) {
    const res = await request(`${base}/${method}`, { method: 'POST', body, headers: { 'content-type': contentType, 'x-grpc-web': '1', 'x-user-agent': 'grpc-web-javascript/0.1', ...headers } });
    return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
  }

  test('binary: a unary call, its reply and its trailers in the last frame', async () => {
    const r = await call('Unary', frame('Unary', { message: 'hi from a browser' }), 'application/grpc-web+proto');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^application\/grpc-web(\+proto)?$/);
    assert.equal(r.headers['x-echo-initial'], '1', 'initial metadata as headers');
    const d = decodeGrpcWebResponse(r.body, 'binary');
    assert.equal(d.messages.length, 1);
    assert.equal(methods.Unary.responseDeserialize(d.messages[0]).message, 'hi from a browser');
    assert.equal(d.trailers['grpc-status'], '0');
    assert.equal(d.trailers['x-echo-trailer'], 'done');
  });

  test('text (base64): the request decoded, the answer encoded, several padded request segments accepted', async () => {
    const one = frame('ClientStream', { message: 'a' }).toString('base64');
    const two = frame('ClientStream', { message: 'bb' }).toString('base64');
    assert.ok(one.endsWith('=') || two.endsWith('='), 'the test sends at least one padded segment');
    const r = await call('ClientStream', one + two, 'application/grpc-web-text', { accept: 'application/grpc-web-text' });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^application\/grpc-web-text(\+proto)?$/);
    assert.match(r.body.toString('latin1'), /^[A-Za-z0-9+/=]+$/, 'the body is base64');
    const d = decodeGrpcWebResponse(r.body, 'text');
    const reply = methods.ClientStream.responseDeserialize(d.messages[0]);
    assert.equal(reply.message, 'a,bb');
    assert.equal(reply.index, 2);
    assert.equal(d.trailers['grpc-status'], '0');
  });

  test('server streaming: every message, then the trailers', async () => {
    const r = await call('ServerStream', frame('ServerStream', { message: 's', count: 4 }), 'application/grpc-web+proto');
    const d = decodeGrpcWebResponse(r.body, 'binary');
    assert.deepEqual(d.messages.map((m) => methods.ServerStream.responseDeserialize(m).index), [0, 1, 2, 3]);
    assert.equal(d.trailers['grpc-status'], '0');
  });

  test('an error status from the server: a trailers-only reply with grpc-status and grpc-message in the headers', async () => {
    const r = await call('Unary', frame('Unary', { fail_code: 7, fail_message: 'not for you' }), 'application/grpc-web+proto', { origin: 'https://app.example' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['grpc-status'], '7');
    assert.equal(decodeURIComponent(String(r.headers['grpc-message'])), 'not for you');
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example');
    assert.match(String(r.headers['access-control-expose-headers']), /grpc-status/);
    assert.equal(r.body.length, 0);
  });

  test('CORS preflight is answered at the edge', async () => {
    const res = await request(`${base}/Unary`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-grpc-web,x-user-agent' },
    });
    await res.body.dump();
    assert.equal(res.statusCode, 204);
    assert.equal(res.headers['access-control-allow-origin'], 'https://app.example');
    assert.match(String(res.headers['access-control-allow-headers']), /x-grpc-web/);
  });

  test('malformed frames, bad base64 and an oversized message get INVALID_ARGUMENT naming the problem; the gateway serves on', async () => {
    const badFlag = Buffer.from([0x07, 0, 0, 0, 1, 0x0a]);
    const r1 = await call('Unary', badFlag, 'application/grpc-web+proto');
    assert.equal(r1.status, 200);
    assert.equal(r1.headers['grpc-status'], '3');
    assert.match(decodeURIComponent(String(r1.headers['grpc-message'])), /bad frame flag 0x07/);

    const truncated = frame('Unary', { message: 'x'.repeat(50) }).subarray(0, 20);
    const r2 = await call('Unary', truncated, 'application/grpc-web+proto');
    assert.equal(r2.headers['grpc-status'], '3');
    assert.match(decodeURIComponent(String(r2.headers['grpc-message'])), /ends inside the frame/);

    const r3 = await call('Unary', 'AAAA*AAA', 'application/grpc-web-text');
    assert.equal(r3.headers['grpc-status'], '3');
    assert.match(decodeURIComponent(String(r3.headers['grpc-message'])), /invalid base64 character/);

    const huge = Buffer.from([0, 0x7f, 0xff, 0xff, 0xff]);
    const r4 = await call('Unary', huge, 'application/grpc-web+proto');
    assert.equal(r4.headers['grpc-status'], '3');
    assert.match(decodeURIComponent(String(r4.headers['grpc-message'])), /over the 4194304-byte limit/);

    const ok = await call('Unary', frame('Unary', { message: 'after' }), 'application/grpc-web+proto');
    assert.equal(methods.Unary.responseDeserialize(decodeGrpcWebResponse(ok.body, 'binary').messages[0]).message, 'after');
  });
});
