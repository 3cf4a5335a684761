// The admin listener every meshgate process runs (fastify): /metrics, /live, /ready and JSON views
// of its state. Loopback by default; when a token is configured every route but /live needs it.
import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
/** Where /metrics comes from: a process's own registry, or a cluster primary's aggregate. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface AdminOptions {
  metrics: MetricsSource;
  token?: string;
  /** Why the process is not ready, or undefined when it is. */
  notReadyReason(): string | undefined;
}

export function createAdminServer(opts: AdminOptions): FastifyInstance {
  const app = Fastify({ logger: false });
  const expected = opts.token ? Buffer.from(`Bearer ${opts.token}`) : undefined;

  app.addHook('onRequest', async (req, reply) => {
    if (expected === undefined || req.url === '/live') return;
    const got = Buffer.from(req.headers.authorization ?? '');
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
      reply.code(401).header('www-authenticate', 'Bearer').send({ error: { code: 'UNAUTHORIZED', message: 'a valid admin token is required' } });
    }
  });

  app.get('/live', async () => ({ live: true }));
  app.get('/ready', async (_req, reply) => {
    const reason = opts.notReadyReason();
    if (reason !== undefined) return reply.code(503).send({ ready: false, reason });
    return { ready: true };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', opts.metrics.contentType);
    return opts.metrics.metrics();
  });
  return app;
}
