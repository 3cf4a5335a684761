// meshgate's own HTTP/1.1 server (mesh-proxy/http/h1-server*.ts, h1-downstream.ts) as a client sees
// it on the wire: raw TCP sockets write request bytes to the gateway's plain listener and read the
// response bytes back, parsed by hand. Verified: keep-alive (with its `keep-alive: timeout` hint and
// a Date header), pipelined requests answered in order, HTTP/1.0 clients closed after their
// response, the server's own refusals (no Host, malformed request line, oversized head, CONNECT,
// an unknown Expect) as JSON errors, 100-continue, chunked request bodies reaching the upstream,
// HEAD responses without body bytes, and clients that vanish mid-request not taking the gateway down.
// Pipelining: a request that asks to close, or that the server refuses, is answered in its turn after
// those before it, which keep their keep-alive.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import type { Gateway } from '../../gateway/gateway.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { startTestGateway, stopAll } from '../helpers/mesh.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';
import { metricValue } from '../helpers/metrics.ts';
import { waitFor } from '../helpers/ports.ts';

const WAIT_MS = 10_000;
const HOST = 'example.test';

/** A raw client connection: every byte it received, and whether the server has closed it. */
class RawClient {
  readonly socket: Socket;
  buf = Buffer.alloc(0);
  /** The server's FIN (or the socket's close) arrived. */
  ended = false;
  closed = false;
  error: Error | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.#wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.#wake();
    });
    socket.on('close', () => {
      this.ended = this.closed = true;
      this.#wake();
    });
    socket.on('error', (err) => {
      this.error = err;
      this.#wake();
    });
  }

  #wake(): void {
    for (const w of this.#waiters) w();
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Resolves once `done()` holds (checked on every event), or fails after WAIT_MS saying what was seen. */
  until(done: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; ended=${this.ended} error=${this.error?.message} received: ${JSON.stringify(this.buf.toString('latin1').slice(0, 2000))}`));
      }, ms);
      this.#waiters.add(check);
    });
  }

  /**
   * Waits for `n` complete responses (requests answered head-only listed in `headOnly` by index);
   * fails at once if the server closes the connection with fewer.
   */
  async responses(n: number, headOnly: number[] = []): Promise<Parsed[]> {
    let parsed: Parsed[] = [];
    await this.until(() => {
      parsed = parseResponses(this.buf, this.ended, headOnly);
      return parsed.length >= n || this.ended;
    }, `${n} response(s)`);
    assert.ok(parsed.length >= n, `${n} response(s) before the connection closed, got ${parsed.length}: ${JSON.stringify(this.buf.toString('latin1'))}`);
    return parsed;
  }

  /** Every response once the server has closed the connection. */
  async allUntilClose(headOnly: number[] = []): Promise<Parsed[]> {
    await this.closedByServer();
    return parseResponses(this.buf, true, headOnly);
  }

  /** Waits for the server to close the connection. */
  closedByServer(): Promise<void> {
    return this.until(() => this.ended, 'the server to close the connection');
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function open(port: number): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('could not connect to the gateway'));
    }, WAIT_MS);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(new RawClient(socket));
    });
  });
}

interface Parsed {
  status: number;
  reason: string;
  /** Fields by lower-case name (repeated ones joined with ", "). */
  headers: Record<string, string>;
  body: string;
  trailers: Record<string, string>;
  /** The response's bytes on the wire, head and body. */
  raw: string;
}

function fields(lines: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    assert.ok(colon > 0, `a field line has a name: ${JSON.stringify(line)}`);
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
  }
  return out;
}

/**
 * The complete responses at the start of `buf` (latin1), framed as RFC 9112 §6.3 says: no body for
 * 1xx, 204, 304 and responses to HEAD (`headOnly` holds the indexes, counting final responses only),
 * else chunked, else Content-Length, else up to the connection's end (only once `ended`).
 */
function parseResponses(buf: Buffer, ended: boolean, headOnly: number[] = []): Parsed[] {
  const text = buf.toString('latin1');
  const out: Parsed[] = [];
  let pos = 0;
  let finals = 0;
  while (pos < text.length) {
    const headEnd = text.indexOf('\r\n\r\n', pos);
    if (headEnd < 0) break;
    const lines = text.slice(pos, headEnd).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0]);
    assert.ok(m, `a status line: ${JSON.stringify(lines[0])} in ${JSON.stringify(text.slice(0, 2000))}`);
    const status = Number(m[1]);
    const headers = fields(lines.slice(1));
    let p = headEnd + 4;
    let body = '';
    let trailers: Record<string, string> = {};
    const noBody = status < 200 || status === 204 || status === 304 || headOnly.includes(finals);
    if (noBody) {
      // Head only.
    } else if (/(?:^|,)\s*chunked\s*$/i.test(headers['transfer-encoding'] ?? '')) {
      let complete = false;
      for (;;) {
        const lineEnd = text.indexOf('\r\n', p);
        if (lineEnd < 0) break;
        const size = parseInt(text.slice(p, lineEnd).split(';')[0], 16);
        assert.ok(Number.isFinite(size), `a chunk size line: ${JSON.stringify(text.slice(p, lineEnd))}`);
        if (size === 0) {
          const end = text.indexOf('\r\n\r\n', lineEnd);
          // The last chunk's line ends either the message ("0\r\n\r\n") or a trailer section.
          if (text.startsWith('\r\n', lineEnd + 2)) {
            p = lineEnd + 4;
          } else {
            if (end < 0) break;
            trailers = fields(text.slice(lineEnd + 2, end).split('\r\n'));
            p = end + 4;
          }
          complete = true;
          break;
        }
        if (text.length < lineEnd + 2 + size + 2) break;
        body += text.slice(lineEnd + 2, lineEnd + 2 + size);
        assert.equal(text.slice(lineEnd + 2 + size, lineEnd + 4 + size), '\r\n', 'a chunk ends with CRLF');
        p = lineEnd + 4 + size;
      }
      if (!complete) break;
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (text.length < p + length) break;
      body = text.slice(p, p + length);
      p += length;
    } else {
      if (!ended) break;
      body = text.slice(p);
      p = text.length;
    }
    out.push({ status, reason: m[2], headers, body, trailers, raw: text.slice(pos, p) });
    if (status >= 200) finals++;
    pos = p;
  }
  return out;
}

/** What the test app answers by default: the request as it arrived. */
interface Echo {
  app: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

function echo(r: Parsed): Echo {
  assert.match(r.headers['content-type'] ?? '', /application\/json/, `the upstream's echo: ${r.raw}`);
  return JSON.parse(r.body) as Echo;
}

/** A JSON error the server wrote itself: `{"error":{"code","message"}}`. */
function errorCode(r: Parsed): string {
  assert.match(r.headers['content-type'] ?? '', /application\/json/, `a JSON error: ${r.raw}`);
  const parsed = JSON.parse(r.body) as { error?: { code?: string; message?: string } };
  assert.equal(typeof parsed.error?.message, 'string', `the error says what went wrong: ${r.body}`);
  return parsed.error!.code!;
}

function get(path: string, extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\n${extra}\r\n`;
}

let store: MemoryStore;
let app: TestApp;
let gw: Gateway;

/** One GET on a fresh connection, answered by the upstream (the gateway is still serving). */
async function stillServes(path: string): Promise<void> {
  const c = await open(gw.http.port);
  try {
    c.write(get(path));
    const [r] = await c.responses(1);
    assert.equal(r.status, 200, r.raw);
    assert.equal(echo(r).url, path);
  } finally {
    c.destroy();
  }
}

before(async () => {
  store = new MemoryStore();
  app = await startApp('h1-app');
  await store.registry.register({ service: 'h1', id: 'a', address: '127.0.0.1', port: app.port, dc: 'local', zone: '', metadata: {} }, 60_000);
  gw = await startTestGateway(store, { h1: {} }, [{ name: 'h1', match: { pathPrefix: '/' }, service: 'h1' }]);
});

after(async () => {
  await stopAll(gw);
  await app?.close();
  await store?.close();
});

test('keep-alive: two requests on one connection, each answered 200 with the keep-alive hint and a Date', async () => {
  // The upstream dates its first response (passed through) but not the second (the gateway adds one).
  app.handler = (req, res, body) => {
    if (req.url === '/second') res.sendDate = false;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ app: app.name, method: req.method, url: req.url, headers: req.headers, body }));
  };
  const c = await open(gw.http.port);
  try {
    c.write(get('/first'));
    const [r1] = await c.responses(1);
    c.write(get('/second'));
    const [, r2] = await c.responses(2);
    for (const [r, path] of [[r1, '/first'], [r2, '/second']] as const) {
      assert.equal(r.status, 200, r.raw);
      assert.equal(r.headers.connection, 'keep-alive', r.raw);
      assert.equal(r.headers['keep-alive'], 'timeout=65', r.raw);
      assert.equal(r.raw.match(/\r\ndate:/gi)?.length, 1, `one Date header: ${r.raw}`);
      assert.ok(!Number.isNaN(Date.parse(r.headers.date)), `a valid Date: ${r.raw}`);
      assert.equal(echo(r).url, path);
    }
    assert.equal(c.ended, false, 'the connection stays open');
  } finally {
    app.handler = undefined;
    c.destroy();
  }
});

test('pipelining: three requests in one write are answered in the order they were sent', async () => {
  const c = await open(gw.http.port);
  try {
    c.write(get('/a') + get('/b') + get('/c'));
    const rs = await c.responses(3);
    assert.equal(rs.length, 3, 'exactly three responses');
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200]);
    assert.deepEqual(rs.map((r) => echo(r).url), ['/a', '/b', '/c']);
    assert.equal(c.ended, false, 'the connection stays open');
  } finally {
    c.destroy();
  }
});

test('pipelining: the last of three requests says Connection: close; all three are answered, then the connection closes', async () => {
  const c = await open(gw.http.port);
  try {
    c.write(get('/a') + get('/b') + get('/c', 'Connection: close\r\n'));
    const rs = await c.allUntilClose();
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200], `three responses: ${JSON.stringify(c.buf.toString('latin1'))}`);
    assert.deepEqual(rs.map((r) => echo(r).url), ['/a', '/b', '/c']);
    assert.deepEqual(rs.map((r) => r.headers.connection), ['keep-alive', 'keep-alive', 'close']);
  } finally {
    c.destroy();
  }
});

test('pipelining: a request the server refuses (no Host) behind one in flight is refused in its turn', async () => {
  const c = await open(gw.http.port);
  try {
    c.write(get('/in-flight') + 'GET /no-host HTTP/1.1\r\n\r\n');
    const rs = await c.allUntilClose();
    assert.equal(rs[0]?.status, 200, JSON.stringify(c.buf.toString('latin1')));
    assert.equal(echo(rs[0]).url, '/in-flight');
    assert.equal(rs[0].headers.connection, 'keep-alive', rs[0].raw);
    assert.equal(rs.length, 2, JSON.stringify(c.buf.toString('latin1')));
    assert.equal(rs[1].status, 400, rs[1].raw);
    assert.equal(errorCode(rs[1]), 'BAD_REQUEST');
    assert.equal(rs[1].headers.connection, 'close', rs[1].raw);
  } finally {
    c.destroy();
  }
});

test('an HTTP/1.0 request without keep-alive is answered, then the server closes the connection', async () => {
  const c = await open(gw.http.port);
  try {
    c.write(`GET /ten HTTP/1.0\r\nHost: ${HOST}\r\n\r\n`);
    await c.closedByServer();
    const rs = parseResponses(c.buf, true);
    assert.equal(rs.length, 1, `one response: ${c.buf.toString('latin1')}`);
    assert.equal(rs[0].status, 200, rs[0].raw);
    assert.equal(rs[0].headers.connection, 'close', rs[0].raw);
    assert.equal(rs[0].headers['keep-alive'], undefined, rs[0].raw);
    assert.notEqual(rs[0].headers['transfer-encoding'], 'chunked', 'no chunked coding for an HTTP/1.0 client');
    assert.equal(echo(rs[0]).url, '/ten');
  } finally {
    c.destroy();
  }
});

test('an HTTP/1.1 request without Host: 400 BAD_REQUEST as JSON, connection closed, counted as a local reply', async () => {
  const admin = `http://127.0.0.1:${gw.admin.port}`;
  const series = { direction: 'edge', code: 'BAD_REQUEST', service: '' };
  const counted = await metricValue(admin, 'meshgate_local_replies_total', series);
  const before = app.received.length;
  const c = await open(gw.http.port);
  try {
    c.write('GET /no-host HTTP/1.1\r\n\r\n');
    const [r] = await c.responses(1);
    assert.equal(r.status, 400, r.raw);
    assert.equal(errorCode(r), 'BAD_REQUEST');
    assert.equal(r.headers.connection, 'close', r.raw);
    await c.closedByServer();
    assert.equal(app.received.length, before, 'the request never reached the upstream');
    assert.equal(await metricValue(admin, 'meshgate_local_replies_total', series), counted + 1);
  } finally {
    c.destroy();
  }
});

test('a malformed request line: 400 as JSON, and the gateway serves the next connection', async () => {
  for (const bytes of ['HELLO\r\n\r\n', 'GET /\x01 HTTP/1.1\r\nHost: example.test\r\n\r\n']) {
    const c = await open(gw.http.port);
    try {
      c.write(bytes);
      const [r] = await c.responses(1);
      assert.equal(r.status, 400, `${JSON.stringify(bytes)}: ${r.raw}`);
      assert.equal(errorCode(r), 'BAD_REQUEST');
      await c.closedByServer();
    } finally {
      c.destroy();
    }
  }
  await stillServes('/after-garbage');
});

test('a request head larger than 16 KiB: 431', async () => {
  const head = Buffer.from(`GET /big HTTP/1.1\r\nHost: ${HOST}\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 'latin1');
  // In one write, then in three (the limit is crossed in the second; the third arrives after the refusal).
  for (const cuts of [[], [9_000, 18_000]]) {
    const c = await open(gw.http.port);
    try {
      let from = 0;
      for (const to of [...cuts, head.length]) {
        c.write(head.subarray(from, to));
        from = to;
        if (to < head.length) await new Promise((r) => setTimeout(r, 30));
      }
      const [r] = await c.responses(1);
      assert.equal(r.status, 431, r.raw);
      assert.equal(errorCode(r), 'HEADERS_TOO_LARGE');
      await c.closedByServer();
    } finally {
      c.destroy();
    }
  }
});

test('CONNECT: 405 METHOD_NOT_ALLOWED as JSON', async () => {
  const c = await open(gw.http.port);
  try {
    c.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    const [r] = await c.responses(1);
    assert.equal(r.status, 405, r.raw);
    assert.equal(errorCode(r), 'METHOD_NOT_ALLOWED');
    await c.closedByServer();
  } finally {
    c.destroy();
  }
});

test('Expect: 100-continue: the client gets 100 Continue before it sends the body, then the upstream\'s answer', async () => {
  const c = await open(gw.http.port);
  try {
    c.write(`POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n`);
    // 1. Nothing but the interim response before the body is sent.
    await c.until(() => c.buf.includes('\r\n\r\n'), 'the interim response');
    assert.equal(c.buf.toString('latin1'), 'HTTP/1.1 100 Continue\r\n\r\n');
    // 2. The body, then the final response.
    c.write('hello world');
    const [interim, final] = await c.responses(2);
    assert.equal(interim.status, 100);
    assert.equal(final.status, 200, final.raw);
    const e = echo(final);
    assert.equal(e.method, 'POST');
    assert.equal(e.url, '/upload');
    assert.equal(e.body, 'hello world');
  } finally {
    c.destroy();
  }
});

test('an Expect other than 100-continue: 417', async () => {
  const before = app.received.length;
  const c = await open(gw.http.port);
  try {
    c.write(`POST /expect HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 2\r\nExpect: something-else\r\n\r\nhi`);
    const [r] = await c.responses(1);
    assert.equal(r.status, 417, r.raw);
    assert.equal(errorCode(r), 'EXPECTATION_FAILED');
    await c.closedByServer();
    assert.equal(app.received.length, before, 'the request never reached the upstream');
  } finally {
    c.destroy();
  }
});

test('a chunked request body reaches the upstream intact', async () => {
  const c = await open(gw.http.port);
  try {
    c.write(`POST /chunked HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`);
    // The second chunk in a write of its own, once the first has had time to go through.
    await new Promise((r) => setTimeout(r, 50));
    c.write('7\r\n, world\r\n0\r\n\r\n');
    const [r] = await c.responses(1);
    assert.equal(r.status, 200, r.raw);
    const e = echo(r);
    assert.equal(e.url, '/chunked');
    assert.equal(e.body, 'hello, world');
    const seen = app.received.find((x) => x.url === '/chunked');
    assert.equal(seen?.body, 'hello, world');
  } finally {
    c.destroy();
  }
});

test('HEAD: the response is a head only, the next pipelined response follows it directly', async () => {
  const c = await open(gw.http.port);
  try {
    c.write(`HEAD /head HTTP/1.1\r\nHost: ${HOST}\r\n\r\n` + get('/after-head'));
    const [head, next] = await c.responses(2, [0]);
    assert.equal(head.status, 200, head.raw);
    assert.ok(head.raw.endsWith('\r\n\r\n'), `a head only: ${JSON.stringify(head.raw)}`);
    // The byte after the HEAD response's blank line starts the next status line.
    const text = c.buf.toString('latin1');
    assert.ok(text.slice(text.indexOf('\r\n\r\n') + 4).startsWith('HTTP/1.1 200 '), JSON.stringify(text));
    assert.equal(next.status, 200, next.raw);
    assert.equal(echo(next).url, '/after-head');
    assert.equal(app.received.find((x) => x.url === '/head')?.method, 'HEAD');
  } finally {
    c.destroy();
  }
});

test('clients that send a request and vanish at once do not take the gateway down', async () => {
  // A GET, a POST with part of its body, a pipelined pair, a 100-continue head without its body and a
  // chunked body cut inside a chunk: each socket destroyed right after the write.
  const inputs = [
    get('/gone-1'),
    `POST /gone-2 HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 100\r\n\r\n0123456789`,
    get('/gone-3') + get('/gone-4'),
    `POST /gone-5 HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n`,
    `POST /gone-6 HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\na\r\n01234`,
  ];
  for (const bytes of inputs) {
    const c = await open(gw.http.port);
    c.write(bytes);
    c.destroy();
  }
  // And one reset (RST rather than FIN) after a request.
  const r = await open(gw.http.port);
  r.write(get('/gone-7'));
  r.socket.resetAndDestroy();
  await new Promise((resolve) => setTimeout(resolve, 200));
  await stillServes('/after-vanishing');
});

test('pipelining: an Upgrade behind a request in flight is handled in its turn (here refused: the route has no websocket: true)', async () => {
  const c = await open(gw.http.port);
  try {
    c.write(get('/first') + `GET /ws HTTP/1.1\r\nHost: ${HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
    const rs = await c.allUntilClose();
    assert.equal(rs.length, 2, JSON.stringify(c.buf.toString('latin1')));
    assert.equal(rs[0].status, 200, rs[0].raw);
    assert.equal(echo(rs[0]).url, '/first');
    assert.equal(rs[1].status, 403, rs[1].raw);
    assert.equal(errorCode(rs[1]), 'UPGRADE_NOT_ALLOWED');
  } finally {
    c.destroy();
  }
});

test("a chunked request's trailers never reach the next request on the connection", async () => {
  const c = await open(gw.http.port);
  try {
    c.write(
      `POST /first HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Smuggled: yes\r\nAuthorization: Bearer evil\r\n\r\n` +
        get('/second', 'X-Second: 2\r\n'),
    );
    const rs = await c.responses(2);
    assert.deepEqual(rs.map((r) => r.status), [200, 200], JSON.stringify(c.buf.toString('latin1')));
    const second = echo(rs[1]);
    assert.equal(second.url, '/second', 'the URL is the second request\'s own');
    assert.equal(second.headers['x-second'], '2');
    assert.equal(second.headers['x-smuggled'], undefined, 'a trailer of the first request is not a header of the second');
    assert.equal(second.headers.authorization, undefined);
    assert.equal(echo(rs[0]).body, 'hello');
  } finally {
    c.destroy();
  }
});

test('a malformed chunk in a request body: 400, the connection closes (no hang), recorded as 400, the gateway serves on', async () => {
  const admin = `http://127.0.0.1:${gw.admin.port}`;
  const series = (status: string) => ({ route: 'h1', status_code: status });
  const [before400, before499] = [await metricValue(admin, 'meshgate_requests_total', series('400')), await metricValue(admin, 'meshgate_requests_total', series('499'))];
  const c = await open(gw.http.port);
  try {
    c.write(`POST /bad-chunk HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n`);
    const rs = await c.allUntilClose();
    // The request may have started upstream; either way the client gets a clear end, never a hang.
    assert.equal(rs.length, 1);
    assert.equal(rs[0].status, 400, rs[0].raw);
  } finally {
    c.destroy();
  }
  // The exchange records what the client got (not 499, "the client left").
  await waitFor('the request recorded as 400', async () => ((await metricValue(admin, 'meshgate_requests_total', series('400'))) === before400 + 1 ? true : undefined), WAIT_MS, 20);
  assert.equal(await metricValue(admin, 'meshgate_requests_total', series('499')), before499);
  await stillServes('/after-bad-chunk');
});

test('a pipelined request whose body is cut short by the client leaving does not take the gateway down', async (t) => {
  // The first request is held upstream, so the second waits in the queue with a body nobody reads
  // yet when the client leaves (its body's error has no listener: it must not become an uncaught one).
  app.handler = (req, res, body) => {
    const reply = () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ app: 'h1-app', method: req.method, url: req.url, headers: req.headers, body }));
    };
    if (req.url === '/slow-enough') setTimeout(reply, 300);
    else reply();
  };
  t.after(() => {
    app.handler = undefined;
  });
  for (const tail of ['abc', '5\r\nab']) {
    const c = await open(gw.http.port);
    const framing = tail === 'abc' ? 'Content-Length: 100' : 'Transfer-Encoding: chunked';
    c.write(get('/slow-enough') + `POST /partial HTTP/1.1\r\nHost: ${HOST}\r\n${framing}\r\n\r\n${tail}`);
    await new Promise((r) => setTimeout(r, 50));
    c.destroy();
  }
  await new Promise((r) => setTimeout(r, 200));
  await stillServes('/after-partial');
});

test('Expect on an HTTP/1.0 request is ignored (as node:http does); a list holding 100-continue is honoured', async () => {
  const c = await open(gw.http.port);
  try {
    c.write(`GET /ten-expect HTTP/1.0\r\nHost: ${HOST}\r\nExpect: something-else\r\n\r\n`);
    const rs = await c.allUntilClose();
    assert.equal(rs[0]?.status, 200, JSON.stringify(c.buf.toString('latin1')));
  } finally {
    c.destroy();
  }
  const d = await open(gw.http.port);
  try {
    d.write(`POST /list-expect HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 2\r\nExpect: 100-continue, x-other\r\n\r\n`);
    await d.until(() => d.buf.toString('latin1').startsWith('HTTP/1.1 100 Continue\r\n\r\n'), '100 Continue');
    d.write('ok');
    await d.until(() => d.buf.toString('latin1').includes('HTTP/1.1 200'), 'the final response');
  } finally {
    d.destroy();
  }
});
