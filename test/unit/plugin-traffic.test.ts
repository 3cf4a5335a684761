// The traffic-shaping built-ins through the plugin harness: cors, request-size-limit, headers,
// ip-filter and request-id.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import cors from '../../plugins/builtin/cors/index.ts';
import headers from '../../plugins/builtin/headers/index.ts';
import ipFilter from '../../plugins/builtin/ip-filter/index.ts';
import requestId from '../../plugins/builtin/request-id/index.ts';
import requestSizeLimit from '../../plugins/builtin/request-size-limit/index.ts';
import { runPlugin } from '../../plugins/testing.ts';

const preflight = (origin: string) => ({ method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'x-token' } });

test('cors: preflights answered locally (204), allowed or not; actual requests get ACAO and Vary', async () => {
  const cfg = { origins: ['https://app.example.com', 'https://*.example.org'], credentials: true, exposeHeaders: ['x-total'] };
  const ok = await runPlugin(cors, cfg, preflight('https://app.example.com'));
  assert.equal(ok.forwarded, false);
  assert.equal(ok.reply?.status, 204);
  assert.equal(ok.reply?.headers?.['access-control-allow-origin'], 'https://app.example.com');
  assert.equal(ok.reply?.headers?.['access-control-allow-credentials'], 'true');
  assert.equal(ok.reply?.headers?.['access-control-allow-headers'], 'x-token');
  assert.match(ok.reply?.headers?.['access-control-allow-methods'] ?? '', /PUT/);

  const wild = await runPlugin(cors, cfg, preflight('https://shop.example.org'));
  assert.equal(wild.reply?.headers?.['access-control-allow-origin'], 'https://shop.example.org');
  const no = await runPlugin(cors, cfg, preflight('https://evil.test'));
  assert.equal(no.reply?.status, 204);
  assert.equal(no.reply?.headers?.['access-control-allow-origin'], undefined, 'a disallowed origin gets no CORS headers');

  const actual = await runPlugin(cors, cfg, { headers: { origin: 'https://app.example.com' } });
  assert.equal(actual.forwarded, true);
  const h = actual.respond(200, { vary: 'Accept-Encoding' });
  assert.equal(h['access-control-allow-origin'], 'https://app.example.com');
  assert.equal(h['access-control-expose-headers'], 'x-total');
  assert.equal(h.vary, 'Accept-Encoding, Origin');
  const star = await runPlugin(cors, { origins: ['*'] }, { headers: { origin: 'https://x.test' } });
  assert.equal(star.respond(200)['access-control-allow-origin'], '*');
  await assert.rejects(runPlugin(cors, { origins: ['*'], credentials: true }), /credentials/);
  await assert.rejects(runPlugin(cors, { origins: ['https://a*.example.com'] }), /wildcard/);
});

test('request-size-limit: a Content-Length over the limit is 413 at once; unsized bodies are limited while streaming', async () => {
  const big = await runPlugin(requestSizeLimit, { maxBytes: 1000 }, { method: 'POST', contentLength: 1001 });
  assert.equal(big.reply?.status, 413);
  assert.equal(big.reply?.code, 'PAYLOAD_TOO_LARGE');
  assert.equal((await runPlugin(requestSizeLimit, { maxBytes: 1000 }, { method: 'POST', contentLength: 1000 })).forwarded, true);
});

test('headers: set, add, remove and rename on both sides, with templates; protected fields refused', async () => {
  const cfg = {
    request: { set: { 'x-route': '%ROUTE%/%SERVICE%' }, add: { 'x-tags': 'edge' }, remove: ['x-debug'], rename: { 'x-old': 'x-new' } },
    response: { set: { 'x-served-by': 'meshgate %REQUEST_ID%' }, remove: ['server'], rename: { 'x-internal': 'x-public' } },
  };
  const r = await runPlugin(headers, cfg, { headers: { 'x-debug': '1', 'x-old': 'v', 'x-tags': 'a' }, route: 'r1', service: 's1', requestId: 'rid-1' });
  assert.equal(r.upstream.headers['x-route'], 'r1/s1');
  assert.equal(r.upstream.headers['x-tags'], 'a, edge');
  assert.equal(r.upstream.headers['x-debug'], undefined);
  assert.equal(r.upstream.headers['x-new'], 'v');
  assert.equal(r.upstream.headers['x-old'], undefined);
  const res = r.respond(200, { server: 'nginx', 'x-internal': 'z' });
  assert.equal(res['x-served-by'], 'meshgate rid-1');
  assert.equal(res.server, undefined);
  assert.equal(res['x-public'], 'z');
  await assert.rejects(runPlugin(headers, { request: { set: { host: 'x' } } }), /cannot be rewritten/);
  await assert.rejects(runPlugin(headers, { request: { remove: ['transfer-encoding'] } }), /cannot be rewritten/);
  await assert.rejects(runPlugin(headers, { response: { set: { 'x-a': '%USER%' } } }), /unknown variable/);
});

test('ip-filter: CIDR allow and deny for IPv4, IPv6 and mapped addresses; X-Forwarded-For only behind trusted proxies', async () => {
  const cfg = { allow: ['10.0.0.0/8', '2001:db8::/32'], deny: ['10.6.6.0/24'] };
  assert.equal((await runPlugin(ipFilter, cfg, { clientIp: '10.1.2.3' })).forwarded, true);
  assert.equal((await runPlugin(ipFilter, cfg, { clientIp: '::ffff:10.1.2.3' })).forwarded, true);
  assert.equal((await runPlugin(ipFilter, cfg, { clientIp: '2001:db8::7' })).forwarded, true);
  const denied = await runPlugin(ipFilter, cfg, { clientIp: '10.6.6.9' });
  assert.equal(denied.reply?.status, 403);
  assert.equal(denied.reply?.code, 'FORBIDDEN');
  assert.equal((await runPlugin(ipFilter, cfg, { clientIp: '192.0.2.1' })).reply?.status, 403, 'not on the allow list');
  // behind a trusted proxy the client comes from X-Forwarded-For; a spoofed entry from an untrusted peer is ignored
  const behind = { ...cfg, trustedProxies: ['192.168.0.0/16'] };
  assert.equal((await runPlugin(ipFilter, behind, { clientIp: '192.168.1.1', headers: { 'x-forwarded-for': '10.1.1.1, 192.168.1.1' } })).forwarded, true);
  assert.equal((await runPlugin(ipFilter, behind, { clientIp: '192.0.2.1', headers: { 'x-forwarded-for': '10.1.1.1' } })).reply?.status, 403);
  await assert.rejects(runPlugin(ipFilter, { allow: ['10.0.0.0/40'] }), /allow: .*prefix/);
  await assert.rejects(runPlugin(ipFilter, {}), /allow, deny or both/);
});

test('request-id: a fresh id when incoming ids are not trusted, and the id under another header both ways', async () => {
  const r = await runPlugin(requestId, { trustIncoming: false, header: 'x-correlation-id' }, { requestId: 'client-chosen', headers: { 'x-request-id': 'client-chosen' } });
  const id = r.upstream.headers['x-request-id'];
  assert.notEqual(id, 'client-chosen');
  assert.match(id, /^[0-9a-f]{32}$/);
  assert.equal(r.upstream.headers['x-correlation-id'], id);
  assert.equal(r.respond(200)['x-correlation-id'], id);
  const kept = await runPlugin(requestId, { header: 'x-correlation-id' }, { requestId: 'abc', headers: { 'x-request-id': 'abc' } });
  assert.equal(kept.upstream.headers['x-correlation-id'], 'abc');
});
