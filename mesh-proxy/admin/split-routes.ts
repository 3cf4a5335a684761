// The admin API's traffic splits: read what this proxy applies, and change a service's split in
// the store (every gateway and sidecar sharing the store applies it within a moment).
//   GET /splits · GET /splits/:service · PUT /splits/:service · DELETE /splits/:service
import type { AdminRouter } from './admin-router.ts';
import type { Logger } from '../observe/log.ts';
import type { SplitStore } from '../store/types.ts';
import { parseSplitSpec, SplitError } from '../traffic/split.ts';
import type { SplitTable } from '../traffic/split-table.ts';

const SERVICE = /^[a-zA-Z0-9][a-zA-Z0-9._-]*$/;

export function registerSplitRoutes(app: AdminRouter, table: SplitTable, store: SplitStore, log: Logger): void {
  app.get('/splits', () => ({ splits: table.list() }));
  app.get('/splits/:service', async (req, reply) => {
    const s = table.get(req.params.service);
    return s ? s.split : reply.fail(404, 'SPLIT_NOT_FOUND', `service "${req.params.service}" has no traffic split`);
  });
  app.put('/splits/:service', async (req, reply) => {
    const service = req.params.service;
    if (!SERVICE.test(service)) return reply.fail(400, 'SPLIT_INVALID', `"${service}" is not a service name`);
    try {
      const spec = parseSplitSpec(req.body);
      const expect = (req.body as { expectVersion?: unknown }).expectVersion;
      if (expect !== undefined && (typeof expect !== 'number' || !Number.isInteger(expect) || expect < 0)) {
        return reply.fail(400, 'SPLIT_INVALID', 'expectVersion: expected a whole number (0: no split yet)');
      }
      const stored = await store.put(service, spec, expect as number | undefined);
      log.info({ service, version: stored.version }, 'traffic split stored');
      return stored;
    } catch (err) {
      if (err instanceof SplitError) return reply.fail(err.code === 'SPLIT_CONFLICT' ? 409 : 400, err.code, err.message);
      return reply.fail(503, 'STORE_UNAVAILABLE', `the store could not save the split: ${(err as Error).message}`);
    }
  });
  app.delete('/splits/:service', async (req, reply) => {
    try {
      const had = await store.delete(req.params.service);
      return had ? { deleted: req.params.service } : reply.fail(404, 'SPLIT_NOT_FOUND', `service "${req.params.service}" has no traffic split`);
    } catch (err) {
      return reply.fail(503, 'STORE_UNAVAILABLE', `the store could not delete the split: ${(err as Error).message}`);
    }
  });
}
