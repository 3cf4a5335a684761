// Peer: fastify with `http2: true` over TLS (HTTP/1.1 allowed by ALPN) + @fastify/http-proxy to the
// HTTP/1.1 upstream, its undici pool sized for the streams in flight.
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';

const app = Fastify({
  logger: false,
  http2: true,
  https: { allowHTTP1: true, cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) },
});
await app.register(proxy, {
  upstream: `http://127.0.0.1:${process.env.UPSTREAM_PORT}`,
  undici: { connections: 512, pipelining: 1, keepAliveTimeout: 60_000 },
  replyOptions: {},
});
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
process.send?.('ready');
