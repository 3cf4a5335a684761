// jwt-auth's verified-token cache: a hit only for the same token bytes, the same key set, within
// exp/nbf (with skew) and within its maximum age; bounded in size.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VerifiedTokens } from '../../plugins/builtin/jwt-auth/verified-tokens.ts';

const now = () => Math.floor(Date.now() / 1000);

test('hits for the same token and key set; misses for another key set, after exp, before nbf or past max age', async () => {
  const c = new VerifiedTokens(10, 0, 60_000);
  c.add('t1', { sub: 'a', exp: now() + 60 }, 1);
  assert.equal(c.get('t1', 1)?.sub, 'a');
  assert.equal(c.get('t2', 1), undefined);
  assert.equal(c.get('t1', 2), undefined, 'a new key set invalidates');
  assert.equal(c.get('t1', 1), undefined, 'and the entry is gone');
  c.add('old', { exp: now() - 1 }, 1);
  assert.equal(c.get('old', 1), undefined, 'expired');
  c.add('future', { exp: now() + 60, nbf: now() + 30 }, 1);
  assert.equal(c.get('future', 1), undefined, 'not yet valid');
  const short = new VerifiedTokens(10, 0, 20);
  short.add('t', { exp: now() + 60 }, 1);
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(short.get('t', 1), undefined, 'verified again after max age');
});

test('bounded: the oldest entry goes first; size 0 caches nothing', () => {
  const c = new VerifiedTokens(2, 0, 60_000);
  for (const t of ['a', 'b', 'c']) c.add(t, { exp: now() + 60 }, 1);
  assert.equal(c.get('a', 1), undefined);
  assert.ok(c.get('b', 1) && c.get('c', 1));
  const off = new VerifiedTokens(0, 0, 60_000);
  off.add('x', { exp: now() + 60 }, 1);
  assert.equal(off.get('x', 1), undefined);
});
