// HTTP/2 at the edge as frames on the wire, read by a raw h2c client: a response from an HTTP/1.1
// upstream ends with the DATA frame that carries its body (Node's compatibility layer, which the
// edge no longer uses, always sent an empty frame of its own after it), and a client that asks for
// trailers (`te: trailers`) gets the upstream's trailers as the closing HEADERS frame.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import type { Gateway } from '../../gateway/gateway.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { startTestGateway, stopAll } from '../helpers/mesh.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';

const DATA = 0x0;
const HEADERS = 0x1;
const SETTINGS = 0x4;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;

interface Frame {
  type: number;
  flags: number;
  stream: number;
  length: number;
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK literal without indexing, the name by static-table index or as a literal (index 0). */
function literal(nameIndex: number, name: string, value: string): Buffer {
  const parts = [Buffer.from([nameIndex])];
  if (nameIndex === 0) parts.push(Buffer.from([name.length]), Buffer.from(name, 'latin1'));
  parts.push(Buffer.from([value.length]), Buffer.from(value, 'latin1'));
  return Buffer.concat(parts);
}

/** One GET on stream 1 over h2c with prior knowledge; resolves with stream 1's frames once it ends. */
function rawGet(port: number, path: string, extra: Buffer[] = []): Promise<Frame[]> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const frames: Frame[] = [];
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`stream 1 did not end; frames so far: ${JSON.stringify(frames)}`));
    }, 10_000);
    socket.on('error', reject);
    socket.on('connect', () => {
      // :method GET (static 2), :scheme http (static 6), :path (name 4), :authority (name 1).
      const block = Buffer.concat([Buffer.from([0x82, 0x86]), literal(4, '', path), literal(1, '', 'example.test'), ...extra]);
      socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), frame(SETTINGS, 0, 0, Buffer.alloc(0)), frame(HEADERS, END_STREAM | END_HEADERS, 1, block)]));
    });
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 9) {
        const length = buf.readUIntBE(0, 3);
        if (buf.length < 9 + length) break;
        const f: Frame = { type: buf[3], flags: buf[4], stream: buf.readUInt32BE(5) & 0x7fffffff, length };
        buf = buf.subarray(9 + length);
        if (f.type === SETTINGS && (f.flags & ACK) === 0) socket.write(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
        if (f.stream !== 1) continue;
        frames.push(f);
        if ((f.flags & END_STREAM) !== 0 && (f.type === DATA || f.type === HEADERS)) {
          clearTimeout(timer);
          socket.destroy();
          resolve(frames);
          return;
        }
      }
    });
  });
}

let store: MemoryStore;
let app: TestApp;
let gw: Gateway;

before(async () => {
  store = new MemoryStore();
  app = await startApp('h1-app');
  app.handler = (req, res) => {
    if (req.url === '/trailers') {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('body before trailers');
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '11' });
    res.end('hello world');
  };
  await store.registry.register({ service: 'h1', id: 'a', address: '127.0.0.1', port: app.port, dc: 'local', zone: '', metadata: {} }, 60_000);
  gw = await startTestGateway(store, { h1: {} }, [{ name: 'h1', match: { pathPrefix: '/' }, service: 'h1' }]);
});

after(async () => {
  await stopAll(gw);
  await app?.close();
  await store?.close();
});

test('a response from an HTTP/1.1 upstream ends with its body frame, not an empty frame after it', async () => {
  const frames = await rawGet(gw.http.port, '/plain');
  const data = frames.filter((f) => f.type === DATA);
  assert.equal(frames[0].type, HEADERS, 'the response starts with its headers');
  assert.equal(data.reduce((n, f) => n + f.length, 0), 11, 'the body arrived');
  const last = frames.at(-1)!;
  assert.equal(last.type, DATA);
  assert.ok(last.length > 0, `the frame that ends the stream carries body bytes: ${JSON.stringify(frames)}`);
});

test('a client that sends te: trailers gets the upstream\'s trailers in the closing HEADERS frame', async () => {
  const frames = await rawGet(gw.http.port, '/trailers', [literal(0, 'te', 'trailers')]);
  const last = frames.at(-1)!;
  assert.equal(last.type, HEADERS, `the stream ends with a trailers block: ${JSON.stringify(frames)}`);
  assert.ok(frames.some((f) => f.type === DATA && f.length > 0), 'the body came before the trailers');
});
