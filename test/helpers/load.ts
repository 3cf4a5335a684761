// A steady request loop for tests that assert "no failed requests while X happens".
import { Agent, request } from 'undici';

export interface LoadResult {
  sent: number;
  ok: number;
  failures: Array<{ status?: number; error?: string; body?: string }>;
  byHeader: Map<string, number>;
}

export interface SteadyLoad {
  stop(): Promise<LoadResult>;
  readonly result: LoadResult;
}

/**
 * `concurrency` loops each sending GET `url` back to back (with a short pause) until stop(); bounded
 * by maxRequests. `countHeader` tallies which upstream answered.
 */
export function steadyLoad(url: string, opts: { concurrency?: number; pauseMs?: number; maxRequests?: number; countHeader?: string; headers?: Record<string, string> } = {}): SteadyLoad {
  const dispatcher = new Agent({ keepAliveTimeout: 10_000, connections: opts.concurrency ?? 4 });
  const result: LoadResult = { sent: 0, ok: 0, failures: [], byHeader: new Map() };
  let running = true;
  const max = opts.maxRequests ?? 200_000;
  const loop = async () => {
    while (running && result.sent < max) {
      result.sent++;
      try {
        const res = await request(url, { dispatcher, headers: opts.headers });
        const body = await res.body.text();
        if (res.statusCode >= 200 && res.statusCode < 400) {
          result.ok++;
          if (opts.countHeader) {
            const v = String(res.headers[opts.countHeader] ?? '');
            result.byHeader.set(v, (result.byHeader.get(v) ?? 0) + 1);
          }
        } else result.failures.push({ status: res.statusCode, body: body.slice(0, 300) });
      } catch (err) {
        result.failures.push({ error: (err as Error).message });
      }
      if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
    }
  };
  const loops = Array.from({ length: opts.concurrency ?? 4 }, loop);
  return {
    result,
    async stop() {
      running = false;
      await Promise.all(loops);
      await dispatcher.close();
      return result;
    },
  };
}
