// The admin API's traffic splits: read what this proxy applies, and change a service's split in
// the store (every gateway and sidecar sharing the store applies it within a moment).
//   GET /splits · GET /splits/:service · PUT /splits/:service · DELETE /splits/:service
import type { FastifyInstance } from 'fastify';
import type { SplitStore } from '../store/types.ts';
import { parseSplitSpec, SplitError } from '../traffic/split.ts';
import type { SplitTable } from '../traffic/split-table.ts';

const SERVICE = /^[a-zA-Z0-9][a-zA-Z0-9._-]*$/;

export function registerSplitRoutes(app: FastifyInstance, table: SplitTable, store: SplitStore): void {
  const fail = (code: string, message: string) => ({ error: { code, message } });
  app.get('/splits', async () => ({ splits: table.list() }));
  app.get<{ Params: { service: string } }>('/splits/:service', async (req, reply) => {
    const s = table.get(req.params.service);
    return s ? s.split : reply.code(404).send(fail('SPLIT_NOT_FOUND', `service "${req.params.service}" has no traffic split`));
  });
  app.put<{ Params: { service: string }; Body: unknown }>('/splits/:service', async (req, reply) => {
    const service = req.params.service;
    if (!SERVICE.test(service)) return reply.code(400).send(fail('SPLIT_INVALID', `"${service}" is not a service name`));
    try {
      const spec = parseSplitSpec(req.body);
      const expect = (req.body as { expectVersion?: unknown }).expectVersion;
      if (expect !== undefined && (typeof expect !== 'number' || !Number.isInteger(expect) || expect < 0)) {
        return reply.code(400).send(fail('SPLIT_INVALID', 'expectVersion: expected a whole number (0: no split yet)'));
      }
      const stored = await store.put(service, spec, expect as number | undefined);
      req.log.info({ service, version: stored.version }, 'traffic split stored');
      return stored;
    } catch (err) {
      if (err instanceof SplitError) return reply.code(err.code === 'SPLIT_CONFLICT' ? 409 : 400).send(fail(err.code, err.message));
      return reply.code(503).send(fail('STORE_UNAVAILABLE', `the store could not save the split: ${(err as Error).message}`));
    }
  });
  app.delete<{ Params: { service: string } }>('/splits/:service', async (req, reply) => {
    try {
      const had = await store.delete(req.params.service);
      return had ? { deleted: req.params.service } : reply.code(404).send(fail('SPLIT_NOT_FOUND', `service "${req.params.service}" has no traffic split`));
    } catch (err) {
      return reply.code(503).send(fail('STORE_UNAVAILABLE', `the store could not delete the split: ${(err as Error).message}`));
    }
  });
}
