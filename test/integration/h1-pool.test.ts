// The HTTP/1.1 upstream pool (mesh-proxy/client/h1-pool.ts) against raw TCP upstreams: each test's
// server writes the exact bytes it means (framing, 1xx, trailers, stray or malformed responses) and
// records the exact bytes it receives, per connection, so reuse and framing are observed on the wire.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { createPool } from '../../mesh-proxy/client/endpoint-pools.ts';
import type { H1Handler, H1DispatchOptions } from '../../mesh-proxy/client/h1-request.ts';
import type { H1Pool } from '../../mesh-proxy/client/h1-pool.ts';
import type { CompiledPolicy } from '../../mesh-proxy/client/policy.ts';
import { freePort, waitFor } from '../helpers/ports.ts';

const WAIT_MS = 5_000;

// --- bounded waiting ---

function withTimeout<T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// --- a raw upstream ---

interface SeenRequest {
  /** 1-based index of the connection it came on. */
  conn: number;
  method: string;
  path: string;
  headers: Array<[string, string]>;
  body: Buffer;
  /** The request exactly as it was on the wire (head, framing and body). */
  raw: Buffer;
}

function header(req: SeenRequest, name: string): string | undefined {
  return req.headers.find(([k]) => k.toLowerCase() === name)?.[1];
}

type Respond = (req: SeenRequest, socket: Socket, up: RawUpstream) => void;

interface RawUpstream {
  port: number;
  /** Connections accepted. */
  connections: number;
  /** Connections open now, and at most at once. */
  open: number;
  maxOpen: number;
  /** Connections that have closed. */
  closed: number;
  requests: SeenRequest[];
  /** Every byte received, per connection (index conn - 1). */
  received: Buffer[];
  close(): Promise<void>;
}

/** One request from the front of `buf`, or null while it is incomplete. */
function parseRequest(buf: Buffer): { req: Omit<SeenRequest, 'conn'>; used: number } | null {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const lines = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
  const [method, path] = lines[0].split(' ');
  const headers = lines.slice(1).map((l): [string, string] => {
    const i = l.indexOf(':');
    return [l.slice(0, i), l.slice(i + 1).trim()];
  });
  const get = (n: string) => headers.find(([k]) => k.toLowerCase() === n)?.[1];
  let pos = headEnd + 4;
  let body: Buffer;
  if (/chunked/i.test(get('transfer-encoding') ?? '')) {
    const parts: Buffer[] = [];
    for (let guard = 0; ; guard++) {
      if (guard > 100_000) throw new Error('too many chunks');
      const lineEnd = buf.indexOf('\r\n', pos);
      if (lineEnd < 0) return null;
      const size = parseInt(buf.subarray(pos, lineEnd).toString('latin1'), 16);
      if (!Number.isFinite(size) || size < 0) throw new Error(`bad chunk size line ${JSON.stringify(buf.subarray(pos, lineEnd).toString('latin1'))}`);
      if (size === 0) {
        const end = buf.indexOf('\r\n\r\n', lineEnd);
        if (end < 0) return null;
        pos = end + 4;
        break;
      }
      if (buf.length < lineEnd + 2 + size + 2) return null;
      parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
      pos = lineEnd + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else {
    const n = Number(get('content-length') ?? 0);
    if (buf.length < pos + n) return null;
    body = Buffer.from(buf.subarray(pos, pos + n));
    pos += n;
  }
  return { req: { method, path, headers, body, raw: Buffer.from(buf.subarray(0, pos)) }, used: pos };
}

async function rawUpstream(respond: Respond): Promise<RawUpstream> {
  const sockets = new Set<Socket>();
  const up: RawUpstream = { port: 0, connections: 0, open: 0, maxOpen: 0, closed: 0, requests: [], received: [], close: async () => {} };
  const server = createServer((socket) => {
    const conn = ++up.connections;
    up.open++;
    up.maxOpen = Math.max(up.maxOpen, up.open);
    up.received[conn - 1] = Buffer.alloc(0);
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => {
      sockets.delete(socket);
      up.open--;
      up.closed++;
    });
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      up.received[conn - 1] = Buffer.concat([up.received[conn - 1], chunk]);
      buf = Buffer.concat([buf, chunk]);
      for (let guard = 0; guard < 1000 && !socket.destroyed; guard++) {
        const r = parseRequest(buf);
        if (r === null) break;
        buf = buf.subarray(r.used);
        const req: SeenRequest = { conn, ...r.req };
        up.requests.push(req);
        respond(req, socket, up);
      }
    });
  });
  server.on('error', () => {});
  const port = await freePort();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  up.port = port;
  up.close = () =>
    withTimeout(
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
      'the upstream to close',
    );
  return up;
}

/** A 200 with a content-length body. */
function reply(socket: Socket, body: string | Buffer, extraHead = ''): void {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${b.length}\r\n${extraHead}\r\n`, 'latin1'), b]));
}

// --- the pool and a collecting handler ---

function pool(port: number, connections = 1, keepAliveMs = 30_000): H1Pool {
  return createPool(`http://127.0.0.1:${port}`, { connections, keepAliveMs, connectTimeoutMs: 2_000 } as CompiledPolicy);
}

interface Outcome {
  status: number | undefined;
  statusText: string | undefined;
  headers: string[] | undefined;
  body: Buffer;
  trailers: string[] | null | undefined;
  error: (Error & { code?: string }) | undefined;
  /** onHeaders calls: 1xx responses must not show up. */
  headerCalls: number;
  /** onComplete and onError calls together: exactly one is expected. */
  endings: number;
  /** onData calls. */
  dataCalls: number;
}

interface Hooks {
  onHeaders?(status: number, abort: (err?: Error) => void, resume: () => void): boolean | void;
  onData?(chunk: Buffer, outcome: Outcome, resume: () => void): boolean | void;
}

interface Pending {
  handler: H1Handler;
  /** Resolves at onComplete or onError (never rejects; bounded by WAIT_MS). */
  done: Promise<Outcome>;
  outcome: Outcome;
}

function collector(hooks: Hooks = {}): Pending {
  const outcome: Outcome = { status: undefined, statusText: undefined, headers: undefined, body: Buffer.alloc(0), trailers: undefined, error: undefined, headerCalls: 0, endings: 0, dataCalls: 0 };
  const chunks: Buffer[] = [];
  let abort: (err?: Error) => void = () => {};
  let resume: () => void = () => {};
  let settle: (o: Outcome) => void = () => {};
  const ended = new Promise<Outcome>((r) => (settle = r));
  const handler: H1Handler = {
    onConnect(a) {
      abort = a;
    },
    onHeaders(status, rawHeaders, res, statusText) {
      outcome.headerCalls++;
      outcome.status = status;
      outcome.statusText = statusText;
      outcome.headers = [...rawHeaders];
      resume = res;
      return hooks.onHeaders?.(status, abort, res) !== false;
    },
    onData(chunk) {
      outcome.dataCalls++;
      chunks.push(Buffer.from(chunk));
      outcome.body = Buffer.concat(chunks);
      return hooks.onData?.(chunk, outcome, resume) !== false;
    },
    onComplete(trailers) {
      outcome.endings++;
      outcome.trailers = trailers === null ? null : [...trailers];
      outcome.body = Buffer.concat(chunks);
      settle(outcome);
    },
    onError(err) {
      outcome.endings++;
      outcome.error = err;
      settle(outcome);
    },
  };
  return { handler, outcome, done: withTimeout(ended, 'the request to complete or fail') };
}

function dispatch(p: H1Pool, opts: Partial<H1DispatchOptions> = {}, hooks: Hooks = {}): Pending {
  const c = collector(hooks);
  p.dispatch({ path: '/', method: 'GET', headers: [], body: null, headersTimeout: WAIT_MS, bodyTimeout: WAIT_MS, ...opts }, c.handler);
  return c;
}

async function send(p: H1Pool, opts: Partial<H1DispatchOptions> = {}, hooks: Hooks = {}): Promise<Outcome> {
  return dispatch(p, opts, hooks).done;
}

function ok(o: Outcome, body?: string): void {
  assert.equal(o.error, undefined, `unexpected error: ${o.error?.message}`);
  assert.equal(o.status, 200);
  if (body !== undefined) assert.equal(o.body.toString(), body);
}

/** Runs `fn` with an upstream and a pool, closing both whatever happens. */
async function withUpstream(respond: Respond, fn: (up: RawUpstream, p: H1Pool) => Promise<void>, connections = 1, keepAliveMs = 30_000): Promise<void> {
  const up = await rawUpstream(respond);
  const p = pool(up.port, connections, keepAliveMs);
  try {
    await fn(up, p);
  } finally {
    await withTimeout(p.close(), 'the pool to close').catch(() => {});
    await up.close();
  }
}

// --- the tests ---

test('keep-alive: 20 sequential requests go over one upstream connection', async () => {
  await withUpstream(
    (req, socket) => reply(socket, `r${req.path}`),
    async (up, p) => {
      for (let i = 0; i < 20; i++) ok(await send(p, { path: `/${i}` }), `r/${i}`);
      assert.equal(up.connections, 1);
      assert.equal(up.requests.length, 20);
      assert.ok(up.requests.every((r) => r.conn === 1));
    },
  );
});

test('10 concurrent requests with connections: 3 use at most 3 connections and all succeed', async () => {
  await withUpstream(
    (req, socket) => setTimeout(() => reply(socket, `r${req.path}`), 30),
    async (up, p) => {
      const all = await Promise.all(Array.from({ length: 10 }, (_, i) => send(p, { path: `/${i}` })));
      all.forEach((o, i) => ok(o, `r/${i}`));
      assert.ok(up.maxOpen <= 3, `at most 3 connections open at once, saw ${up.maxOpen}`);
      assert.ok(up.connections <= 3, `at most 3 connections made, saw ${up.connections}`);
      assert.equal(up.requests.length, 10);
    },
    3,
  );
});

test('a chunked response: the body is joined and its trailers reach onComplete', async () => {
  await withUpstream(
    (_req, socket) => {
      socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum, x-count\r\n\r\n5\r\nhello\r\n');
      setTimeout(() => socket.write('6\r\n world\r\n0\r\nx-checksum: abc123\r\nx-count: 2\r\n\r\n'), 20);
    },
    async (_up, p) => {
      const o = await send(p);
      ok(o, 'hello world');
      assert.deepEqual(o.trailers, ['x-checksum', 'abc123', 'x-count', '2']);
      assert.equal(o.endings, 1);
    },
  );
});

test('a response delimited by the connection closing completes with its full body; the next request uses a new connection', async () => {
  await withUpstream(
    (req, socket) => {
      if (req.path === '/eof') {
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nfirst part, ');
        setTimeout(() => socket.end('second part'), 20);
      } else reply(socket, 'after');
    },
    async (up, p) => {
      const o = await send(p, { path: '/eof' });
      ok(o, 'first part, second part');
      assert.equal(o.endings, 1);
      ok(await send(p, { path: '/next' }), 'after');
      assert.equal(up.connections, 2);
      assert.equal(up.requests[1].conn, 2);
    },
  );
});

test('100 Continue and 103 Early Hints before the final 200: only the final head reaches onHeaders', async () => {
  await withUpstream(
    (_req, socket) => {
      socket.write('HTTP/1.1 100 Continue\r\n\r\n');
      socket.write('HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n');
      setTimeout(() => socket.write('HTTP/1.1 200 OK\r\nx-final: yes\r\ncontent-length: 2\r\n\r\nok'), 20);
    },
    async (up, p) => {
      const o = await send(p);
      ok(o, 'ok');
      assert.equal(o.headerCalls, 1);
      assert.equal(o.statusText, 'OK');
      assert.deepEqual(o.headers, ['x-final', 'yes', 'content-length', '2']);
      // The connection is still in step: a second request on it gets its own answer.
      ok(await send(p), 'ok');
      assert.equal(up.connections, 1);
    },
  );
});

test('HEAD answered with content-length: 1000 and no body completes empty and the connection is reused', async () => {
  await withUpstream(
    (req, socket) => {
      if (req.method === 'HEAD') socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n');
      else reply(socket, 'get-body');
    },
    async (up, p) => {
      const h = await send(p, { method: 'HEAD' });
      ok(h, '');
      assert.equal(h.dataCalls, 0);
      assert.deepEqual(h.headers, ['content-length', '1000']);
      ok(await send(p), 'get-body');
      assert.equal(up.connections, 1);
      assert.deepEqual(
        up.requests.map((r) => [r.method, r.conn]),
        [
          ['HEAD', 1],
          ['GET', 1],
        ],
      );
    },
  );
});

test('a streamed request body goes chunked without content-length, and raw with one', async () => {
  await withUpstream(
    (req, socket) => reply(socket, `got ${req.body.length}`),
    async (up, p) => {
      const parts = () => Readable.from([Buffer.from('hello'), Buffer.from(' '), Buffer.from('world')]);
      ok(await send(p, { method: 'POST', path: '/chunked', body: parts() }), 'got 11');
      const chunked = up.requests[0];
      assert.equal(chunked.body.toString(), 'hello world');
      assert.equal(header(chunked, 'transfer-encoding'), 'chunked');
      assert.equal(header(chunked, 'content-length'), undefined);
      const raw = chunked.raw.toString('latin1');
      assert.equal(raw.slice(raw.indexOf('\r\n\r\n') + 4), '5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n');

      ok(await send(p, { method: 'POST', path: '/length', headers: ['content-length', '11'], body: parts() }), 'got 11');
      const plain = up.requests[1];
      assert.equal(header(plain, 'content-length'), '11');
      assert.equal(header(plain, 'transfer-encoding'), undefined);
      const raw2 = plain.raw.toString('latin1');
      assert.equal(raw2.slice(raw2.indexOf('\r\n\r\n') + 4), 'hello world');
      // Both framings left the connection in step.
      assert.equal(up.connections, 1);
      assert.equal(Buffer.concat(up.received).length, chunked.raw.length + plain.raw.length);
    },
  );
});

test('a response with 40 header fields: all 40 reach onHeaders, in order', async () => {
  const fields: string[] = [];
  for (let i = 0; i < 39; i++) fields.push(`x-field-${String(i).padStart(2, '0')}`, `value ${i}`);
  fields.push('content-length', '4');
  let head = 'HTTP/1.1 200 OK\r\n';
  for (let i = 0; i < fields.length; i += 2) head += `${fields[i]}: ${fields[i + 1]}\r\n`;
  await withUpstream(
    (_req, socket) => socket.write(`${head}\r\nbody`),
    async (_up, p) => {
      const o = await send(p);
      ok(o, 'body');
      assert.equal(o.headers?.length, 80);
      assert.deepEqual(o.headers, fields);
      // And again on the same connection (the parser's header state was reset).
      const o2 = await send(p);
      assert.deepEqual(o2.headers, fields);
    },
  );
});

test('the upstream closing an idle keep-alive connection: the next request succeeds on a new connection', async () => {
  await withUpstream(
    (req, socket, up) => {
      reply(socket, `conn ${up.connections}`);
      if (req.path === '/then-close') setTimeout(() => socket.end(), 30);
    },
    async (up, p) => {
      ok(await send(p, { path: '/then-close' }), 'conn 1');
      await waitFor('the upstream to close its idle connection', () => (up.closed === 1 ? true : undefined), WAIT_MS);
      await waitFor('the pool to drop the closed connection', () => (p.stats.connections === 0 ? true : undefined), WAIT_MS);
      const o = await send(p, { path: '/next' });
      ok(o, 'conn 2');
      assert.equal(up.connections, 2);
    },
  );
});

test('keep-alive: timeout=1 from the upstream: the connection is not reused', async () => {
  await withUpstream(
    (req, socket) => reply(socket, 'x', req.path === '/short' ? 'Keep-Alive: timeout=1\r\n' : 'Keep-Alive: timeout=5\r\n'),
    async (up, p) => {
      ok(await send(p, { path: '/short' }), 'x');
      ok(await send(p, { path: '/long' }), 'x');
      // timeout=1 leaves no time before the server's own close: the first connection went.
      assert.equal(up.connections, 2);
      await waitFor('the first connection to be closed', () => (up.closed >= 1 ? true : undefined), WAIT_MS);
      // timeout=5 leaves 4 s: the second connection carries the next request.
      ok(await send(p, { path: '/long' }), 'x');
      assert.equal(up.connections, 2);
    },
  );
});

test("keep-alive: timeout=N lengthens the pool's idle time; a response announcing none restores it", async () => {
  await withUpstream(
    (req, socket) => reply(socket, 'x', req.path === '/hinted' ? 'Keep-Alive: timeout=60\r\n' : ''),
    async (up, p) => {
      ok(await send(p, { path: '/hinted' }), 'x');
      // Idle past the pool's 300 ms: the server's 60 s (less 1 s) holds the connection open.
      await new Promise((r) => setTimeout(r, 900));
      ok(await send(p, { path: '/plain' }), 'x');
      assert.equal(up.connections, 1);
      // No hint on that response: back to the pool's 300 ms, so meshgate closes it.
      await waitFor('the pool to close the idle connection', () => (up.closed === 1 ? true : undefined), WAIT_MS);
      ok(await send(p, { path: '/plain' }), 'x');
      assert.equal(up.connections, 2);
    },
    1,
    300,
  );
});

test('the upstream closing mid-body: onError UND_ERR_SOCKET, and a later request works', async () => {
  await withUpstream(
    (req, socket) => {
      if (req.path === '/cut') {
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b');
        setTimeout(() => socket.end(), 20);
      } else reply(socket, 'fine');
    },
    async (up, p) => {
      const o = await send(p, { path: '/cut' });
      assert.equal(o.status, 200);
      assert.equal(o.error?.code, 'UND_ERR_SOCKET');
      assert.equal(o.endings, 1);
      assert.equal(o.trailers, undefined, 'onComplete must not be called');
      ok(await send(p, { path: '/ok' }), 'fine');
      assert.equal(up.connections, 2);
    },
  );
});

test('headersTimeout against a silent upstream, and bodyTimeout against a stalled body', async () => {
  await withUpstream(
    (req, socket) => {
      if (req.path === '/stall-body') socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc');
      // /silent: never answered
    },
    async (_up, p) => {
      const h = await send(p, { path: '/silent', headersTimeout: 200 });
      assert.equal(h.error?.code, 'UND_ERR_HEADERS_TIMEOUT');
      assert.equal(h.headerCalls, 0);
      assert.equal(h.endings, 1);

      const b = await send(p, { path: '/stall-body', bodyTimeout: 200 });
      assert.equal(b.status, 200);
      assert.equal(b.body.toString(), 'abc');
      assert.equal(b.error?.code, 'UND_ERR_BODY_TIMEOUT');
      assert.equal(b.endings, 1);
    },
    2,
  );
});

test('a header value with CRLF, or two host headers: UND_ERR_INVALID_ARG and nothing is sent', async () => {
  await withUpstream(
    (_req, socket) => reply(socket, 'ok'),
    async (up, p) => {
      const crlf = await send(p, { headers: ['x-evil', 'a\r\nx-injected: 1'] });
      assert.equal(crlf.error?.code, 'UND_ERR_INVALID_ARG');
      assert.equal(crlf.endings, 1);
      const hosts = await send(p, { headers: ['host', 'a.example', 'Host', 'b.example'] });
      assert.equal(hosts.error?.code, 'UND_ERR_INVALID_ARG');
      // A valid request after them: the only bytes the upstream ever received are its own.
      ok(await send(p, { path: '/valid' }), 'ok');
      assert.equal(up.requests.length, 1);
      const all = Buffer.concat(up.received);
      assert.ok(all.toString('latin1').startsWith('GET /valid HTTP/1.1\r\n'));
      assert.equal(all.length, up.requests[0].raw.length);
      assert.ok(!all.toString('latin1').includes('x-injected'));
    },
  );
});

test('a malformed response: onError with an HPE_ code, and the pool keeps working', async () => {
  await withUpstream(
    (req, socket) => {
      if (req.path === '/bad') socket.write('HTTP/1.1 abc\r\n\r\n');
      else reply(socket, 'good');
    },
    async (up, p) => {
      const o = await send(p, { path: '/bad' });
      assert.match(o.error?.code ?? '', /^HPE_/);
      assert.equal(o.headerCalls, 0);
      assert.equal(o.endings, 1);
      ok(await send(p, { path: '/good' }), 'good');
      assert.equal(up.connections, 2);
    },
  );
});

test('abort from onHeaders: onError gets exactly that error; the next request works on a new connection', async () => {
  await withUpstream(
    (req, socket) => {
      if (req.path === '/abort-me') {
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nfirst');
        setTimeout(() => socket.write('-half'), 20);
      } else reply(socket, 'next');
    },
    async (up, p) => {
      const reason = new Error('the caller went away');
      const o = await send(p, { path: '/abort-me' }, { onHeaders: (_status, abort) => abort(reason) });
      assert.equal(o.error, reason);
      assert.equal(o.endings, 1);
      await sleep(50); // the rest of the body, had it been relayed, would have arrived by now
      assert.equal(o.dataCalls, 0);
      assert.equal(o.endings, 1);
      ok(await send(p, { path: '/next' }), 'next');
      assert.equal(up.connections, 2);
      assert.equal(up.requests[1].conn, 2);
    },
  );
});

test('connection refused: every queued request fails with ECONNREFUSED', async () => {
  const port = await freePort();
  for (const connections of [1, 2]) {
    const p = pool(port, connections);
    try {
      const all = await Promise.all([dispatch(p).done, dispatch(p).done, dispatch(p).done]);
      for (const o of all) {
        assert.equal(o.error?.code, 'ECONNREFUSED');
        assert.equal(o.endings, 1);
      }
      assert.deepEqual(p.stats, { connections: 0, idle: 0, queued: 0 });
    } finally {
      await withTimeout(p.close(), 'the pool to close');
    }
  }
});

test('backpressure: onData returning false pauses until resume(); the full 1 MB body arrives', async () => {
  const big = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = i % 251;
  await withUpstream(
    (_req, socket) => reply(socket, big),
    async (_up, p) => {
      let callsBeforeResume = -1;
      const o = await send(
        p,
        { bodyTimeout: 0 },
        {
          onData: (_chunk, out, resume) => {
            if (out.dataCalls !== 1) return true;
            setTimeout(() => {
              callsBeforeResume = out.dataCalls;
              resume();
            }, 100);
            return false;
          },
        },
      );
      ok(o);
      assert.equal(callsBeforeResume, 1, 'no data is delivered while paused');
      assert.ok(o.dataCalls > 1);
      assert.equal(o.body.length, big.length);
      assert.ok(o.body.equals(big));
    },
  );
});

test('a stray response after a complete one: the next request gets its own response on a new connection', async () => {
  // Both responses in one write, so the client sees the stray bytes with the response they follow.
  // One stray has a body (its bytes cannot parse as a response head), one has none (it parses cleanly).
  for (const stray of ['HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstray', 'HTTP/1.1 204 No Content\r\n\r\n']) {
    await withUpstream(
      (req, socket) => {
        if (req.path === '/double') socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst${stray}`);
        else reply(socket, `own ${req.path}`);
      },
      async (up, p) => {
        ok(await send(p, { path: '/double' }), 'first');
        const o = await send(p, { path: '/next' });
        ok(o, 'own /next');
        assert.equal(up.connections, 2, `stray ${JSON.stringify(stray)}: the connection is not reused`);
        assert.equal(up.requests[1].conn, 2);
      },
    );
  }
});

test('close(): the request in flight completes, close() resolves after it, and later dispatches fail UND_ERR_CLOSED', async () => {
  await withUpstream(
    (_req, socket) => setTimeout(() => reply(socket, 'slow'), 200),
    async (up, p) => {
      const order: string[] = [];
      const inFlight = dispatch(p, { path: '/slow' });
      void inFlight.done.then(() => order.push('request'));
      await waitFor('the upstream to get the request', () => (up.requests.length === 1 ? true : undefined), WAIT_MS);
      const closing = p.close().then(() => order.push('close'));
      ok(await inFlight.done, 'slow');
      await withTimeout(closing, 'close() to resolve');
      assert.deepEqual(order, ['request', 'close']);
      assert.equal(p.stats.connections, 0);
      const late = await send(p);
      assert.equal(late.error?.code, 'UND_ERR_CLOSED');
      assert.equal(up.requests.length, 1);
    },
  );
});

test('POST with no body and no content-length sends content-length: 0', async () => {
  await withUpstream(
    (_req, socket) => reply(socket, 'ok'),
    async (up, p) => {
      ok(await send(p, { method: 'POST', body: null }), 'ok');
      assert.equal(header(up.requests[0], 'content-length'), '0');
      assert.equal(header(up.requests[0], 'transfer-encoding'), undefined);
      assert.equal(up.requests[0].body.length, 0);
    },
  );
});

test('a buffered body that does not match its content-length: UND_ERR_REQ_CONTENT_LENGTH_MISMATCH, nothing sent, the connection still serves', async () => {
  await withUpstream(
    (req, socket) => reply(socket, `own ${req.path}`),
    async (up, p) => {
      ok(await send(p, { path: '/first' }), 'own /first');
      const bad = await send(p, { method: 'POST', path: '/bad', headers: ['content-length', '5'], body: Buffer.from('abc') });
      assert.equal(bad.error?.code, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
      assert.equal(bad.endings, 1);
      // With one connection allowed, the next request needs that connection back (not after its idle time).
      ok(await send(p, { path: '/next' }), 'own /next');
      assert.deepEqual(
        up.requests.map((r) => [r.path, r.conn]),
        [
          ['/first', 1],
          ['/next', 1],
        ],
      );
      assert.ok(!Buffer.concat(up.received).toString('latin1').includes('/bad'));
    },
  );
});

test('bodyTimeout does not count the time the handler keeps the response paused (as undici)', async () => {
  const big = Buffer.alloc(1024 * 1024, 'x');
  await withUpstream(
    (_req, socket) => reply(socket, big),
    async (_up, p) => {
      // The upstream sends everything at once: the only silence is the handler's own pause, well past bodyTimeout.
      const o = await send(
        p,
        { bodyTimeout: 200 },
        {
          onData: (_chunk, out, resume) => {
            if (out.dataCalls !== 1) return true;
            setTimeout(resume, 600);
            return false;
          },
        },
      );
      ok(o);
      assert.equal(o.body.length, big.length);
    },
  );
});

test('a handler that pauses on the last chunk and never resumes: the connection still serves the next request', async () => {
  await withUpstream(
    (req, socket) => reply(socket, `own ${req.path}`),
    async (up, p) => {
      const first = await send(p, { path: '/first' }, { onData: () => false });
      ok(first, 'own /first');
      ok(await send(p, { path: '/second', headersTimeout: 2_000 }), 'own /second');
      assert.equal(up.connections, 1);
    },
  );
});
