// The HTTP/1.1 server's own timeouts, on an H1Server built with short ones (the proxy listeners use
// node:http's defaults: 60 s for a head, 300 s for a request, 65 s of keep-alive idleness, which
// no test waits for): a head that never completes gets 408 and the connection closes; an idle
// keep-alive connection is closed once its announced time has passed, never before.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { H1Server } from '../../mesh-proxy/http/h1-server.ts';

let server: net.Server;
let h1: H1Server;
let port: number;

before(async () => {
  h1 = new H1Server(
    {
      request: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
        res.end('ok');
      },
      upgrade: (_req, res) => res.end(),
      rejected: () => {},
      failed: () => {},
    },
    { keepAliveTimeoutMs: 2_000, headersTimeoutMs: 1_500, requestTimeoutMs: 30_000 },
  );
  server = net.createServer({ allowHalfOpen: true }, h1.accept);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  h1.closeAll();
  await new Promise<void>((r) => server.close(() => r()));
});

/** Connects, writes `bytes`, and resolves with what came back and when the server closed (ms after the write). */
function exchange(bytes: string, limitMs = 15_000): Promise<{ text: string; closedAfterMs: number; firstByteMs: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let t0 = 0;
    let firstByteMs = -1;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server did not close within ${limitMs} ms; received ${JSON.stringify(text)}`));
    }, limitMs);
    socket.on('connect', () => {
      t0 = performance.now();
      socket.write(bytes);
    });
    socket.on('data', (d: Buffer) => {
      if (firstByteMs < 0) firstByteMs = performance.now() - t0;
      text += d.toString('latin1');
    });
    socket.on('end', () => socket.end());
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closedAfterMs: performance.now() - t0, firstByteMs });
    });
    socket.on('error', () => {});
  });
}

test('a request head that never completes: 408 REQUEST_TIMEOUT as JSON, then the connection closes', async () => {
  const r = await exchange('GET / HTTP/1.1\r\nHost: example.test\r\nX-Slow: ');
  assert.match(r.text, /^HTTP\/1\.1 408 Request Timeout\r\n/, r.text);
  assert.match(r.text, /"code":"REQUEST_TIMEOUT"/);
  assert.match(r.text, /\r\nconnection: close\r\n/i);
  // Sweeps run once a second: the refusal comes after the 1.5 s bound, not before.
  assert.ok(r.firstByteMs >= 1_400, `answered after ${r.firstByteMs} ms`);
});

test('an idle keep-alive connection closes after its announced timeout, not before', async () => {
  const r = await exchange('GET / HTTP/1.1\r\nHost: example.test\r\n\r\n');
  assert.match(r.text, /^HTTP\/1\.1 200 OK\r\n/, r.text);
  assert.match(r.text, /\r\nkeep-alive: timeout=2\r\n/, 'the timeout is announced');
  assert.ok(r.closedAfterMs >= 2_000, `closed after ${Math.round(r.closedAfterMs)} ms, before the announced 2 s`);
});
