// The gRPC-Web codec on its own: content types, base64 request decoding at any chunking, framing
// checks, and response encoding that decodes back to the same frames and trailers.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { downstreamContentType, grpcWebMode, isGrpc, upstreamContentType } from '../../gateway/grpc-web/content-type.ts';
import { Base64RequestDecoder } from '../../gateway/grpc-web/text-decoder.ts';
import { FrameChecker } from '../../gateway/grpc-web/frame-checker.ts';
import { decodeGrpcWebResponse, GrpcWebResponseEncoder, trailerFrame } from '../../gateway/grpc-web/response-encoder.ts';

/** A small deterministic PRNG (mulberry32), so failures reproduce. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function frameOf(payload: Buffer, flag = 0): Buffer {
  const h = Buffer.alloc(5);
  h[0] = flag;
  h.writeUInt32BE(payload.length, 1);
  return Buffer.concat([h, payload]);
}

function chunks(buf: Buffer, random: () => number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; ) {
    const n = 1 + Math.floor(random() * 9);
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out;
}

async function through(stream: NodeJS.ReadWriteStream, parts: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (c: Buffer) => out.push(c));
    stream.on('end', resolve);
    stream.on('error', reject);
    Readable.from(parts).pipe(stream as NodeJS.WritableStream);
  });
  return Buffer.concat(out);
}

describe('gRPC-Web content types', () => {
  test('modes, and the mapping both ways', () => {
    assert.equal(grpcWebMode('application/grpc-web'), 'binary');
    assert.equal(grpcWebMode('application/grpc-web+proto; charset=utf-8'), 'binary');
    assert.equal(grpcWebMode('Application/GRPC-Web-Text+proto'), 'text');
    assert.equal(grpcWebMode('application/grpc'), undefined);
    assert.equal(grpcWebMode('application/grpc-webx'), undefined);
    assert.equal(upstreamContentType('application/grpc-web-text+proto'), 'application/grpc+proto');
    assert.equal(upstreamContentType('application/grpc-web'), 'application/grpc');
    assert.equal(downstreamContentType('application/grpc+proto', 'text'), 'application/grpc-web-text+proto');
    assert.equal(downstreamContentType('application/grpc', 'binary'), 'application/grpc-web');
    assert.equal(downstreamContentType(undefined, 'binary'), 'application/grpc-web+proto');
    assert.equal(isGrpc('application/grpc+json'), true);
    assert.equal(isGrpc('application/grpc-web'), false);
  });
});

describe('base64 request decoding', () => {
  test('any chunking, several padded segments, CR/LF ignored: the same bytes', async () => {
    const random = rng(7);
    for (let round = 0; round < 200; round++) {
      const segments = Array.from({ length: 1 + Math.floor(random() * 4) }, () => Buffer.from(Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256))));
      const text = segments.map((s) => s.toString('base64')).join(round % 7 === 0 ? '\r\n' : '');
      const got = await through(new Base64RequestDecoder(), chunks(Buffer.from(text, 'latin1'), random));
      assert.deepEqual(got, Buffer.concat(segments), `round ${round}`);
    }
  });

  test('a bad character, misplaced padding, or an incomplete group is an error with a code', async () => {
    for (const bad of ['AAA*', 'A=AA', 'AAAAA', 'AA=A']) {
      await assert.rejects(through(new Base64RequestDecoder(), [Buffer.from(bad)]), (err: Error & { code?: string }) => err.code === 'GRPC_WEB_BAD_BASE64', bad);
    }
  });
});

describe('frame checking', () => {
  test('well-formed frames pass unchanged at any chunking', async () => {
    const random = rng(11);
    for (let round = 0; round < 100; round++) {
      const body = Buffer.concat(Array.from({ length: Math.floor(random() * 5) }, () => frameOf(Buffer.alloc(Math.floor(random() * 30), 7), random() < 0.2 ? 1 : 0)));
      assert.deepEqual(await through(new FrameChecker(1024), chunks(body, random)), body);
    }
  });

  test('a bad flag, a body ending inside a frame, an oversized length: coded errors naming the byte', async () => {
    await assert.rejects(through(new FrameChecker(1024), [frameOf(Buffer.from('ok')), Buffer.from([0x80, 0, 0, 0, 0])]), /bad frame flag 0x80 at byte 7/);
    await assert.rejects(through(new FrameChecker(1024), [frameOf(Buffer.alloc(10)).subarray(0, 8)]), (e: Error & { code?: string }) => e.code === 'GRPC_WEB_BAD_FRAME' && /7 payload byte/.test(e.message));
    await assert.rejects(through(new FrameChecker(1024), [Buffer.from([0, 0, 0])]), /2 header byte/);
    await assert.rejects(through(new FrameChecker(16), [frameOf(Buffer.alloc(17))]), (e: Error & { code?: string }) => e.code === 'GRPC_WEB_MESSAGE_TOO_LARGE');
  });
});

describe('response encoding', () => {
  const trailers = { 'grpc-status': '0', 'grpc-message': '', 'x-multi': ['a', 'b'], 'x-data-bin': 'AAEC', ':status': '200' };

  test('trailer frame: flag 0x80, length, lower-case "name: value" lines, one per value, no pseudo-headers', () => {
    const f = trailerFrame({ 'Grpc-Status': '5', 'x-multi': ['a', 'b'] });
    assert.equal(f[0], 0x80);
    assert.equal(f.readUInt32BE(1), f.length - 5);
    assert.equal(f.subarray(5).toString(), 'grpc-status: 5\r\nx-multi: a\r\nx-multi: b\r\n');
  });

  for (const mode of ['binary', 'text'] as const) {
    test(`${mode}: any data chunking decodes back to the frames and trailers`, () => {
      const random = rng(mode === 'text' ? 3 : 5);
      for (let round = 0; round < 100; round++) {
        const messages = Array.from({ length: Math.floor(random() * 4) }, () => Buffer.alloc(Math.floor(random() * 50), round));
        const enc = new GrpcWebResponseEncoder(mode);
        const out = chunks(Buffer.concat(messages.map((m) => frameOf(m))), random).map((c) => enc.data(c));
        out.push(enc.end(trailers));
        const body = Buffer.concat(out);
        if (mode === 'text') assert.match(body.toString('latin1'), /^[A-Za-z0-9+/]*=*$/, 'one continuous base64 stream');
        const d = decodeGrpcWebResponse(body, mode);
        assert.deepEqual(d.messages, messages, `round ${round}`);
        assert.deepEqual(d.trailers, { 'grpc-status': '0', 'grpc-message': '', 'x-multi': 'a, b', 'x-data-bin': 'AAEC' });
      }
    });
  }
});
