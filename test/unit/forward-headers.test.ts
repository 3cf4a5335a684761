// Header rewriting for one proxy hop: hop-by-hop removal, request ids, trace context, x-forwarded-*
// at the edge; plus the Host/absolute-form helpers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { forwardRequestHeaders, forwardResponseHeaders, type ForwardedRequest } from '../../mesh-proxy/http/forward-headers.ts';
import { isValidRequestId, newRequestId, nextTraceparent } from '../../mesh-proxy/http/ids.ts';
import { hostWithoutPort, splitAbsoluteForm } from '../../mesh-proxy/http/host.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const VALID_TP = `00-${TRACE_ID}-${PARENT_ID}-01`;
const TP_RE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Runs forwardRequestHeaders on a flat [name, value, ...] list. */
function fwd(raw: string[], edgeClientIp: string | null = null, proto: 'http' | 'https' = 'http'): ForwardedRequest {
  const out = { headers: [], requestId: '', hasBody: false, host: '' } as unknown as ForwardedRequest;
  forwardRequestHeaders(raw, edgeClientIp, proto, out);
  return out;
}

function pairs(flat: string[]): Array<[string, string]> {
  assert.equal(flat.length % 2, 0, 'a flat list of name/value pairs');
  const out: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i], flat[i + 1]]);
  return out;
}

/** Every value of a header, by case-insensitive name. */
function all(flat: string[], name: string): string[] {
  return pairs(flat)
    .filter(([n]) => n.toLowerCase() === name.toLowerCase())
    .map(([, v]) => v);
}

function one(flat: string[], name: string): string | undefined {
  const v = all(flat, name);
  assert.ok(v.length <= 1, `${name} appears ${v.length} times: ${JSON.stringify(v)}`);
  return v[0];
}

function names(flat: string[]): string[] {
  return pairs(flat).map(([n]) => n.toLowerCase());
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade', 'trailer', 'proxy-authorization', 'expect'];

function variants(name: string): string[] {
  const title = name.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase());
  const mixed = [...name].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('');
  return [name, name.toUpperCase(), title, mixed];
}

describe('request: hop-by-hop fields', () => {
  test('are dropped in any letter case', () => {
    for (const name of HOP_BY_HOP) {
      for (const n of variants(name)) {
        const value = name === 'connection' ? 'keep-alive' : name === 'transfer-encoding' ? 'chunked' : 'v';
        const out = fwd(['Host', 'svc', n, value, 'Accept', '*/*']);
        assert.ok(!names(out.headers).includes(name), `${n} was forwarded: ${JSON.stringify(out.headers)}`);
        assert.equal(one(out.headers, 'accept'), '*/*');
        assert.equal(one(out.headers, 'host'), 'svc');
      }
    }
  });

  test('proxy-authenticate is dropped too', () => {
    assert.ok(!names(fwd(['Proxy-Authenticate', 'Basic']).headers).includes('proxy-authenticate'));
  });

  test('end-to-end fields and their order are kept', () => {
    const out = fwd(['Host', 'svc', 'Accept', 'a', 'X-Custom', '1', 'Cookie', 'c=1', 'x-custom', '2', 'Authorization', 'Bearer t']);
    assert.deepEqual(pairs(out.headers).slice(0, 6), [
      ['Host', 'svc'],
      ['Accept', 'a'],
      ['X-Custom', '1'],
      ['Cookie', 'c=1'],
      ['x-custom', '2'],
      ['Authorization', 'Bearer t'],
    ]);
  });

  test('fields named in Connection are dropped, in any case, across several Connection fields', () => {
    const out = fwd([
      'Host', 'svc',
      'Connection', 'close, X-Foo',
      'X-Foo', '1',
      'connection', ' x-bar ,keep-alive',
      'X-BAR', '2',
      'X-Keep', '3',
    ]);
    const n = names(out.headers);
    assert.ok(!n.includes('x-foo') && !n.includes('x-bar') && !n.includes('connection'), JSON.stringify(out.headers));
    assert.equal(one(out.headers, 'x-keep'), '3');
  });

  test('Connection cannot remove the ids and x-forwarded-* the proxy states', () => {
    const out = fwd(['Host', 'h', 'Connection', 'x-request-id, traceparent, x-forwarded-for', 'X-Forwarded-For', '9.9.9.9'], '1.2.3.4');
    assert.ok(one(out.headers, 'x-request-id'));
    assert.match(one(out.headers, 'traceparent') ?? '', TP_RE);
    assert.equal(one(out.headers, 'x-forwarded-for'), '9.9.9.9, 1.2.3.4');
  });

  test('benign Connection tokens remove nothing else', () => {
    const out = fwd(['Host', 'h', 'Connection', 'keep-alive, close, Upgrade', 'X-A', '1']);
    assert.equal(one(out.headers, 'x-a'), '1');
    assert.equal(one(out.headers, 'host'), 'h');
  });
});

describe('request: x-request-id', () => {
  test('a valid id is kept', () => {
    for (const id of ['abc-123', 'f47ac10b-58cc-4372-a567-0e02b2c3d479', 'a.b:c/d+e=f_g', 'x'.repeat(128)]) {
      const out = fwd(['X-Request-Id', id]);
      assert.equal(out.requestId, id);
      assert.deepEqual(all(out.headers, 'x-request-id'), [id]);
    }
  });

  test('an invalid or absent id is replaced by a new uuid', () => {
    for (const raw of [['X-Request-Id', ''], ['x-request-id', 'has space'], ['x-request-id', 'x'.repeat(129)], ['x-request-id', 'a\u00e9'], ['x-request-id', '<script>'], []]) {
      const out = fwd(raw);
      assert.match(out.requestId, UUID_RE, JSON.stringify(raw));
      assert.deepEqual(all(out.headers, 'x-request-id'), [out.requestId]);
    }
  });

  test('the first valid one of several is kept, and only one is sent', () => {
    const out = fwd(['x-request-id', 'bad id', 'X-Request-ID', 'good-1', 'x-request-id', 'good-2']);
    assert.equal(out.requestId, 'good-1');
    assert.deepEqual(all(out.headers, 'x-request-id'), ['good-1']);
  });

  test('new ids differ', () => {
    assert.notEqual(fwd([]).requestId, fwd([]).requestId);
  });
});

describe('request: traceparent', () => {
  test('a valid one keeps the trace id and flags with a new parent id', () => {
    for (const flags of ['01', '00']) {
      const out = fwd(['TraceParent', `00-${TRACE_ID}-${PARENT_ID}-${flags}`]);
      const tp = all(out.headers, 'traceparent');
      assert.equal(tp.length, 1);
      const m = TP_RE.exec(tp[0]);
      assert.ok(m, tp[0]);
      assert.equal(m[1], TRACE_ID);
      assert.notEqual(m[2], PARENT_ID);
      assert.notEqual(m[2], '0000000000000000');
      assert.equal(m[3], flags);
    }
  });

  test('each hop gets a different parent id', () => {
    const a = TP_RE.exec(nextTraceparent(VALID_TP));
    const b = TP_RE.exec(nextTraceparent(VALID_TP));
    assert.ok(a && b);
    assert.equal(a[1], b[1]);
    assert.notEqual(a[2], b[2]);
  });

  test('an invalid, absent or all-zero trace id starts a new valid trace', () => {
    const invalid = [
      undefined,
      '',
      'garbage',
      `00-${'0'.repeat(32)}-${PARENT_ID}-01`,
      `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`,
      `ff-${TRACE_ID}-${PARENT_ID}-01`,
      `00-${TRACE_ID.slice(1)}-${PARENT_ID}-01`,
      `00-${TRACE_ID}-${PARENT_ID}`,
      ` ${VALID_TP}`,
      `00-${TRACE_ID}-${PARENT_ID}-01-extra`,
    ];
    for (const tp of invalid) {
      const out = fwd(tp === undefined ? [] : ['traceparent', tp]);
      const sent = all(out.headers, 'traceparent');
      assert.equal(sent.length, 1);
      const m = TP_RE.exec(sent[0]);
      assert.ok(m, `${tp} → ${sent[0]}`);
      assert.notEqual(m[1], TRACE_ID, String(tp));
      assert.notEqual(m[1], '0'.repeat(32));
      assert.notEqual(m[2], '0'.repeat(16));
      assert.equal(m[3], '01');
    }
  });

  test('new traces differ', () => {
    const ids = new Set(Array.from({ length: 300 }, () => TP_RE.exec(nextTraceparent(undefined))![1]));
    assert.equal(ids.size, 300);
  });

  test('an all-zero parent id is invalid and starts a new trace (W3C trace-context, parent-id)', () => {
    const m = TP_RE.exec(nextTraceparent(`00-${TRACE_ID}-${'0'.repeat(16)}-01`));
    assert.ok(m);
    assert.notEqual(m[1], TRACE_ID);
  });

  test('tracestate passes through', () => {
    const out = fwd(['traceparent', VALID_TP, 'tracestate', 'vendor=abc']);
    assert.equal(one(out.headers, 'tracestate'), 'vendor=abc');
  });
});

describe('request: x-forwarded-* at the edge', () => {
  test('x-forwarded-for gets the client address appended; proto and host are set', () => {
    const out = fwd(['Host', 'api.example.com:8443', 'Accept', '*/*'], '203.0.113.9', 'https');
    assert.equal(one(out.headers, 'x-forwarded-for'), '203.0.113.9');
    assert.equal(one(out.headers, 'x-forwarded-proto'), 'https');
    assert.equal(one(out.headers, 'x-forwarded-host'), 'api.example.com:8443');
  });

  test('an existing x-forwarded-for is preserved, several fields joined in order', () => {
    assert.equal(one(fwd(['X-Forwarded-For', '198.51.100.1'], '10.0.0.1').headers, 'x-forwarded-for'), '198.51.100.1, 10.0.0.1');
    const out = fwd(['X-Forwarded-For', '1.1.1.1, 2.2.2.2', 'x-forwarded-for', '3.3.3.3'], '10.0.0.1');
    assert.equal(one(out.headers, 'x-forwarded-for'), '1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.1');
  });

  test('client-supplied x-forwarded-proto and -host are replaced', () => {
    const out = fwd(['Host', 'real.example.com', 'X-Forwarded-Proto', 'https', 'X-FORWARDED-HOST', 'evil.example.com'], '10.0.0.1', 'http');
    assert.deepEqual(all(out.headers, 'x-forwarded-proto'), ['http']);
    assert.deepEqual(all(out.headers, 'x-forwarded-host'), ['real.example.com']);
  });

  test('without a Host header no x-forwarded-host is sent (and a client one is still dropped)', () => {
    const out = fwd(['X-Forwarded-Host', 'evil.example.com'], '10.0.0.1');
    assert.deepEqual(all(out.headers, 'x-forwarded-host'), []);
    assert.equal(out.host, '');
  });

  test('an IPv6 client address', () => {
    assert.equal(one(fwd([], '::1').headers, 'x-forwarded-for'), '::1');
  });
});

describe('request: x-forwarded-* inside the mesh', () => {
  test('pass through untouched, nothing added', () => {
    const raw = ['Host', 'catalog', 'X-Forwarded-For', '1.1.1.1, 10.0.0.1', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'api.example.com'];
    const out = fwd(raw, null);
    assert.deepEqual(all(out.headers, 'x-forwarded-for'), ['1.1.1.1, 10.0.0.1']);
    assert.deepEqual(all(out.headers, 'x-forwarded-proto'), ['https']);
    assert.deepEqual(all(out.headers, 'x-forwarded-host'), ['api.example.com']);
    assert.deepEqual(pairs(out.headers).slice(0, 4), pairs(raw));
  });

  test('absent ones are not invented', () => {
    const n = names(fwd(['Host', 'catalog'], null).headers);
    assert.ok(!n.some((x) => x.startsWith('x-forwarded-')), n.join());
  });
});

describe('request: body and host', () => {
  test('hasBody', () => {
    assert.equal(fwd([]).hasBody, false);
    assert.equal(fwd(['Content-Length', '0']).hasBody, false);
    assert.equal(fwd(['Content-Length', '12']).hasBody, true);
    assert.equal(fwd(['content-length', '1']).hasBody, true);
    assert.equal(fwd(['Transfer-Encoding', 'chunked']).hasBody, true);
    assert.equal(fwd(['TRANSFER-ENCODING', 'gzip, chunked']).hasBody, true);
  });

  test('content-length is forwarded, transfer-encoding is not', () => {
    const out = fwd(['Content-Length', '5']);
    assert.equal(one(out.headers, 'content-length'), '5');
    assert.deepEqual(all(fwd(['Transfer-Encoding', 'chunked']).headers, 'transfer-encoding'), []);
  });

  test('host is captured as received and forwarded', () => {
    const out = fwd(['HOST', 'Catalog:8080', 'Accept', 'x']);
    assert.equal(out.host, 'Catalog:8080');
    assert.equal(one(out.headers, 'host'), 'Catalog:8080');
    assert.equal(fwd(['Accept', 'x']).host, '');
  });

  test('the output object is overwritten, not merged', () => {
    const out = fwd(['Content-Length', '3', 'Host', 'a', 'X-Request-Id', 'rid-1']);
    forwardRequestHeaders(['Accept', 'x'], null, 'http', out);
    assert.equal(out.hasBody, false);
    assert.equal(out.host, '');
    assert.notEqual(out.requestId, 'rid-1');
    assert.equal(all(out.headers, 'content-length').length, 0);
  });
});

describe('response headers', () => {
  // The raw list as the HTTP/1.1 client's parser hands it over: latin1 strings.
  const buf = (flat: string[]) => flat;

  test('hop-by-hop fields are dropped in any case; others kept in order', () => {
    for (const name of [...HOP_BY_HOP, 'proxy-authenticate']) {
      for (const n of variants(name)) {
        const out = forwardResponseHeaders(buf(['Content-Type', 'text/plain', n, 'x', 'Set-Cookie', 'a=1', 'set-cookie', 'b=2']));
        assert.deepEqual(out, ['Content-Type', 'text/plain', 'Set-Cookie', 'a=1', 'set-cookie', 'b=2'], n);
      }
    }
  });

  test('fields named in Connection are dropped', () => {
    const out = forwardResponseHeaders(buf(['Connection', 'close, X-Internal', 'X-Internal', 'secret', 'x-internal', 's2', 'X-Public', 'ok']));
    assert.deepEqual(out, ['X-Public', 'ok']);
  });

  test('fields named in any of several Connection fields are dropped', () => {
    const out = forwardResponseHeaders(buf(['Connection', 'x-a', 'Connection', 'x-b', 'x-a', '1', 'x-b', '2', 'x-c', '3']));
    assert.deepEqual(out, ['x-c', '3']);
  });

  test('latin1 values survive', () => {
    const out = forwardResponseHeaders(['X-Name', Buffer.from('caf\u00e9', 'latin1').toString('latin1')]);
    assert.deepEqual(out, ['X-Name', 'caf\u00e9']);
  });

  test('no headers', () => {
    assert.deepEqual(forwardResponseHeaders([]), []);
  });
});

describe('ids', () => {
  test('isValidRequestId', () => {
    for (const ok of ['a', 'A-z_0.9:/+=', newRequestId(), 'x'.repeat(128)]) assert.equal(isValidRequestId(ok), true, ok);
    for (const bad of ['', ' ', 'a b', 'x'.repeat(129), 'a\nb', 'a;b', 'a,b', '\u00e9']) assert.equal(isValidRequestId(bad), false, JSON.stringify(bad));
  });

  test('newRequestId is a v4 uuid', () => {
    assert.match(newRequestId(), UUID_RE);
  });

  test('nextTraceparent keeps producing valid ids past the random pool refill', () => {
    for (let i = 0; i < 1000; i++) assert.match(nextTraceparent(undefined), TP_RE);
  });
});

describe('host helpers', () => {
  test('hostWithoutPort', () => {
    const cases: Array<[string, string]> = [
      ['catalog', 'catalog'],
      ['catalog:8080', 'catalog'],
      ['API.Example.COM:443', 'api.example.com'],
      ['Example.com', 'example.com'],
      ['[::1]:80', '[::1]'],
      ['[::1]', '[::1]'],
      ['[2001:DB8::1]:8443', '[2001:db8::1]'],
      ['[::1', '[::1'],
      ['127.0.0.1:9', '127.0.0.1'],
      ['host:', 'host'],
      ['', ''],
    ];
    for (const [input, want] of cases) assert.equal(hostWithoutPort(input), want, input);
  });

  test('splitAbsoluteForm', () => {
    assert.deepEqual(splitAbsoluteForm('http://catalog:8080/items?x=1'), { host: 'catalog:8080', path: '/items?x=1' });
    assert.deepEqual(splitAbsoluteForm('http://catalog:80/items?x'), { host: 'catalog', path: '/items?x' });
    assert.deepEqual(splitAbsoluteForm('https://API.example.com/a'), { host: 'api.example.com', path: '/a' });
    assert.deepEqual(splitAbsoluteForm('http://catalog'), { host: 'catalog', path: '/' });
    assert.deepEqual(splitAbsoluteForm('http://catalog?q'), { host: 'catalog', path: '/?q' });
    assert.deepEqual(splitAbsoluteForm('http://catalog/a#frag'), { host: 'catalog', path: '/a' });
    assert.deepEqual(splitAbsoluteForm('http://[::1]:4140/x'), { host: '[::1]:4140', path: '/x' });
    assert.deepEqual(splitAbsoluteForm('http://c/a/../b'), { host: 'c', path: '/b' });
    for (const bad of ['/items', '*', 'catalog/items', 'ftp://catalog/x', 'file:///etc/passwd', 'http://', '', 'javascript:alert(1)']) {
      assert.equal(splitAbsoluteForm(bad), undefined, bad);
    }
  });
});
