// bin/old-generation.ts in real V8: with objects that are promoted and then die (requests in flight),
// a sidecar's memory-saving mode and a gateway's ×2 limit keep the old space well below V8's own
// sizing, and an operator's flag on node's command line keeps V8's choice.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { promisify } from 'node:util';

const WORKLOAD = fileURLToPath(new URL('../fixtures/heap/old-generation-workload.ts', import.meta.url));
const MiB = 1024 * 1024;

async function maxOldSpace(kind: string, nodeArgs: string[] = []): Promise<number> {
  const { stdout } = await promisify(execFile)(process.execPath, [...nodeArgs, '--import', 'tsx', WORKLOAD, kind], { env: { ...process.env, NODE_OPTIONS: '' } });
  return Number(stdout.trim());
}

test('the old generation: smaller for a sidecar and a gateway than V8 sizes it; operator flags win', async (t) => {
  // One after another: V8 sizes the old generation from GC and mutator speed, which contention shifts.
  const none = await maxOldSpace('none');
  const sidecar = await maxOldSpace('sidecar');
  const gateway = await maxOldSpace('gateway');
  const sidecarOptOut = await maxOldSpace('sidecar', ['--no-optimize-for-size']);
  const gatewayOptOut = await maxOldSpace('gateway', ['--heap-growing-percent=0']);
  const mb = (n: number) => (n / MiB).toFixed(1);
  t.diagnostic(`old space, largest committed (MiB): V8 ${mb(none)}, sidecar ${mb(sidecar)}, gateway ${mb(gateway)}, opted out ${mb(sidecarOptOut)} / ${mb(gatewayOptOut)}`);
  assert.ok(none > 0);
  // Measured: sidecar 0.4–0.5 of V8's size, gateway 0.55–0.65; opted out, 1.6–2.7× theirs.
  assert.ok(sidecar <= 0.75 * none, `sidecar ${mb(sidecar)} vs ${mb(none)} MiB`);
  assert.ok(gateway <= 0.85 * none, `gateway ${mb(gateway)} vs ${mb(none)} MiB`);
  assert.ok(sidecarOptOut >= 1.25 * sidecar, `--no-optimize-for-size: ${mb(sidecarOptOut)} vs ${mb(sidecar)} MiB`);
  assert.ok(gatewayOptOut >= 1.15 * gateway, `--heap-growing-percent=0: ${mb(gatewayOptOut)} vs ${mb(gateway)} MiB`);
});
