// Peer: fastify + @fastify/http-proxy (undici underneath), as its README sets it up.
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';

const app = Fastify({ logger: false });
await app.register(proxy, {
  upstream: `http://127.0.0.1:${process.env.UPSTREAM_PORT}`,
  undici: { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 },
  replyOptions: {},
});
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
process.send?.('ready');
