// Reads one series from a meshgate admin API's Prometheus text.
import { call } from './mesh.ts';

/** A metric's value from `adminUrl`/metrics (0 when the series does not exist yet). */
export async function metricValue(adminUrl: string, name: string, labels: Record<string, string>): Promise<number> {
  const text = (await call(`${adminUrl}/metrics`)).body;
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && want.every((w) => l.includes(w)));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}
