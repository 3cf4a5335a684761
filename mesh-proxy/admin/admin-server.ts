// The admin listener every meshgate process runs: /metrics, /live, /ready and JSON views of its
// state. Loopback by default; when a token is configured every route but /live needs it.
import { timingSafeEqual } from 'node:crypto';
import { AdminRouter } from './admin-router.ts';
import type { Logger } from '../observe/log.ts';

export type { AdminReply, AdminRequest } from './admin-router.ts';
export { AdminRouter } from './admin-router.ts';

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
  /** Where a failing admin handler is logged. */
  log?: Logger;
}

export function createAdminServer(opts: AdminOptions): AdminRouter {
  const app = new AdminRouter(opts.log);
  const expected = opts.token ? Buffer.from(`Bearer ${opts.token}`) : undefined;
  if (expected !== undefined) {
    app.guard((req, reply) => {
      if (req.path === '/live') return true;
      const got = Buffer.from(req.headers.authorization ?? '');
      if (got.length === expected.length && timingSafeEqual(got, expected)) return true;
      reply.header('www-authenticate', 'Bearer').fail(401, 'UNAUTHORIZED', 'a valid admin token is required');
      return false;
    });
  }

  app.get('/live', () => ({ live: true }));
  app.get('/ready', (_req, reply) => {
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
