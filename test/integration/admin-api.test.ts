// The admin API's HTTP layer (admin-router.ts) over real sockets: token, routing, parameters, JSON
// bodies and meshgate's JSON errors for everything it refuses, and a handler that throws.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { request } from 'undici';
import { createAdminServer, type AdminRouter } from '../../mesh-proxy/admin/admin-server.ts';

const TOKEN = 's3cret';
let app: AdminRouter;
let base: string;
const logged: Array<{ msg: string; path?: string; err?: { message: string } }> = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const line of chunk.toString().split('\n')) if (line) logged.push(JSON.parse(line));
    done();
  },
});

before(async () => {
  app = createAdminServer({ metrics: { contentType: 'text/plain; version=0.0.4', metrics: async () => 'm_total 1\n' }, token: TOKEN, notReadyReason: () => undefined, log: pino({ level: 'info' }, sink) });
  app.get('/things/:name', (req) => ({ name: req.params.name }));
  app.put('/things/:name', (req, reply) => (typeof req.body === 'object' && req.body !== null ? { name: req.params.name, body: req.body } : reply.code(400).send({ error: { code: 'NO_BODY', message: 'a body' } })));
  app.post('/boom', () => {
    throw new Error('handler failed');
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${app.address().port}`;
});

after(() => app?.close());

const auth = { authorization: `Bearer ${TOKEN}` };

async function send(path: string, opts: { method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE'; headers?: Record<string, string>; body?: string } = {}) {
  const res = await request(`${base}${path}`, { method: opts.method ?? 'GET', headers: { ...auth, ...opts.headers }, body: opts.body });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as { error?: { code: string; message: string } } & Record<string, unknown> };
}

test('the token guards every route but /live', async () => {
  assert.equal((await request(`${base}/live`)).statusCode, 200);
  const res = await request(`${base}/ready`);
  assert.equal(res.statusCode, 401);
  assert.equal(res.headers['www-authenticate'], 'Bearer');
  assert.equal(((await res.body.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
  const wrong = await request(`${base}/things/a`, { headers: { authorization: 'Bearer nope!' } });
  assert.equal(wrong.statusCode, 401);
  await wrong.body.dump();
  assert.deepEqual((await send('/ready')).json(), { ready: true });
});

test('/metrics in the registry content type; HEAD answers without a body', async () => {
  const m = await send('/metrics');
  assert.equal(m.headers['content-type'], 'text/plain; version=0.0.4');
  assert.equal(m.text, 'm_total 1\n');
  const head = await send('/live', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.text, '');
  assert.equal(head.headers['content-length'], String(Buffer.byteLength('{"live":true}')));
});

test('path parameters are decoded; query strings are ignored for routing', async () => {
  assert.deepEqual((await send('/things/a%20b?x=1')).json(), { name: 'a b' });
  assert.equal((await send('/things/')).status, 404);
});

test('unknown routes are 404 NOT_FOUND, known paths with another method 405 with Allow', async () => {
  const nf = await send('/nowhere');
  assert.equal(nf.status, 404);
  assert.equal(nf.json().error?.code, 'NOT_FOUND');
  const na = await send('/things/a', { method: 'DELETE' });
  assert.equal(na.status, 405);
  assert.equal(na.headers.allow, 'GET, PUT');
  assert.equal(na.json().error?.code, 'METHOD_NOT_ALLOWED');
});

test('JSON bodies: parsed; malformed 400, another media type 415', async () => {
  const ok = await send('/things/x', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"weight":3}' });
  assert.deepEqual(ok.json(), { name: 'x', body: { weight: 3 } });
  const bad = await send('/things/x', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"weight":' });
  assert.equal(bad.status, 400);
  assert.equal(bad.json().error?.code, 'INVALID_JSON');
  const form = await send('/things/x', { method: 'PUT', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1' });
  assert.equal(form.status, 415);
  assert.equal(form.json().error?.code, 'UNSUPPORTED_MEDIA_TYPE');
  const empty = await send('/things/x', { method: 'PUT' });
  assert.equal(empty.json().error?.code, 'NO_BODY', 'no body reaches the handler as undefined');
});

test('a body declared over 1 MiB: 413 PAYLOAD_TOO_LARGE before any of it is read, and the connection closes', async () => {
  const socket = connect(app.address().port, '127.0.0.1');
  socket.setTimeout(5000, () => socket.destroy());
  socket.write(`PUT /things/x HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer ${TOKEN}\r\ncontent-type: application/json\r\ncontent-length: ${(1 << 20) + 1}\r\n\r\n`);
  // Not a byte of the body is sent: only a check of the declared length can answer.
  let text = '';
  for await (const chunk of socket) text += chunk.toString();
  assert.match(text, /^HTTP\/1\.1 413 /);
  assert.match(text, /connection: close/i);
  assert.match(text, /"code":"PAYLOAD_TOO_LARGE"/);
});

test('a handler that throws answers 500 INTERNAL, is logged, and the server keeps serving', async () => {
  const r = await send('/boom', { method: 'POST' });
  assert.equal(r.status, 500);
  assert.equal(r.json().error?.code, 'INTERNAL');
  assert.match(r.json().error?.message ?? '', /handler failed/);
  const line = logged.find((l) => l.msg === 'admin request failed' && l.path === '/boom');
  assert.equal(line?.err?.message, 'handler failed');
  assert.equal((await send('/live')).status, 200);
});
