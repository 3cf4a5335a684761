// The failover plan of one service: thresholds, proportional shift, hysteresis, no flapping.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ServiceFailover } from '../../gateway/datacenters/failover.ts';

const policy = { threshold: 0.7, hysteresis: 0.1, failbackAfterMs: 1000 };
const up = [{ dc: 'b', health: { healthy: 3, total: 3 } }];

describe('ServiceFailover', () => {
  test('all local while the healthy share is at or above the threshold', () => {
    const f = new ServiceFailover('s', policy);
    f.update({ healthy: 7, total: 10 }, up, 0);
    assert.deepEqual(f.plan, { localShare: 1, peer: 'b', mode: 'local' });
    for (let i = 0; i < 100; i++) assert.equal(f.pick(i / 100), undefined);
  });

  test('below it, the share kept local shrinks with health and reaches zero with no local endpoint', () => {
    const f = new ServiceFailover('s', policy);
    f.update({ healthy: 6, total: 10 }, up, 0);
    assert.equal(f.plan.mode, 'shifting');
    assert.ok(Math.abs(f.plan.localShare - 0.6 / 0.8) < 1e-9);
    f.update({ healthy: 2, total: 10 }, up, 10);
    assert.ok(Math.abs(f.plan.localShare - 0.25) < 1e-9);
    f.update({ healthy: 0, total: 0 }, up, 20);
    assert.equal(f.plan.localShare, 0);
    assert.equal(f.pick(0.999), 'b');
    // pick() follows the share: random values below it stay local.
    f.update({ healthy: 4, total: 10 }, up, 30);
    assert.equal(f.pick(0.49), undefined);
    assert.equal(f.pick(0.51), 'b');
  });

  test('never to a peer whose service is entirely down or unreachable: everything stays local', () => {
    const f = new ServiceFailover('s', policy);
    f.update({ healthy: 1, total: 10 }, [{ dc: 'b', health: { healthy: 0, total: 3 } }, { dc: 'c', health: undefined }], 0);
    assert.deepEqual(f.plan, { localShare: 1, peer: undefined, mode: 'shifting' });
    f.update({ healthy: 1, total: 10 }, [{ dc: 'b', health: { healthy: 0, total: 3 } }, { dc: 'c', health: { healthy: 1, total: 1 } }], 1);
    assert.equal(f.plan.peer, 'c', 'the next datacenter in priority order that can serve');
  });

  test('fail-back needs threshold + hysteresis for failbackAfter: a share hovering at the threshold does not flap', () => {
    const f = new ServiceFailover('s', policy);
    f.update({ healthy: 6, total: 10 }, up, 0);
    let modes = 0;
    let last = f.plan.mode;
    // 0.69 … 0.79 back and forth for 10 s, every 100 ms.
    for (let t = 0; t < 10_000; t += 100) {
      f.update({ healthy: 69 + ((t / 100) % 11), total: 100 }, up, t);
      if (f.plan.mode !== last) modes++;
      last = f.plan.mode;
    }
    assert.equal(modes, 0, 'stayed shifting: never at 0.8 long enough');
    // Recovered for real: back to local only after failbackAfter.
    f.update({ healthy: 9, total: 10 }, up, 20_000);
    assert.equal(f.plan.mode, 'shifting');
    f.update({ healthy: 9, total: 10 }, up, 20_500);
    assert.equal(f.plan.mode, 'shifting');
    f.update({ healthy: 9, total: 10 }, up, 21_000);
    assert.deepEqual(f.plan, { localShare: 1, peer: 'b', mode: 'local' });
    // A dip during recovery restarts the clock.
    f.update({ healthy: 6, total: 10 }, up, 22_000);
    f.update({ healthy: 10, total: 10 }, up, 22_100);
    f.update({ healthy: 7, total: 10 }, up, 22_900);
    f.update({ healthy: 10, total: 10 }, up, 23_000);
    assert.equal(f.plan.mode, 'shifting');
  });
});
