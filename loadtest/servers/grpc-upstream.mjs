// The fixed, cheap gRPC upstream of scenario grpc-unary: node:http2 without TLS (h2c), answering
// every call with one small framed message and grpc-status 0 in the trailers, as a unary gRPC
// server does, without a gRPC library's per-call work.
import http2 from 'node:http2';

const payload = Buffer.from('hello from the benchmark gRPC upstream');
const message = Buffer.alloc(5 + 2 + payload.length);
message.writeUInt32BE(2 + payload.length, 1);
message[5] = 0x0a; // field 1, length-delimited
message[6] = payload.length;
payload.copy(message, 7);
const headers = { ':status': 200, 'content-type': 'application/grpc' };
const trailers = { 'grpc-status': '0' };

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on('stream', (stream) => {
  stream.on('error', () => {});
  stream.resume();
  stream.on('end', () => {
    if (stream.destroyed) return;
    stream.respond(headers, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(trailers));
    stream.end(message);
  });
});
server.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
