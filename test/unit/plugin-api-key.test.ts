// api-key against fake requests: hashed keys, consumers, what reaches the upstream.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import apiKey from '../../plugins/builtin/api-key/index.ts';
import { generateKey, hashKey } from '../../plugins/builtin/api-key/hash.ts';
import { pluginHarness, runPlugin } from '../../plugins/testing.ts';

const ACME = generateKey();
const GLOBEX = generateKey();
const config = (extra: Record<string, unknown> = {}) => ({
  keys: [
    { consumer: 'acme', hash: hashKey(ACME) },
    { consumer: 'globex', hash: hashKey(GLOBEX) },
  ],
  forwardConsumerAs: 'x-consumer',
  ...extra,
});

describe('api-key', () => {
  test('hashKey matches `printf %s KEY | sha256sum`', () => {
    const out = execFileSync('sh', ['-c', 'printf %s "$KEY" | sha256sum'], { env: { ...process.env, KEY: ACME } }).toString();
    assert.equal(hashKey(ACME), `sha256:${out.split(' ')[0]}`);
  });

  test('a known key passes: consumer set and forwarded, the key header stripped, a spoofed consumer header replaced', async () => {
    const h = await pluginHarness(apiKey, config());
    try {
      const run = await h.run({ headers: { 'X-Api-Key': GLOBEX, 'x-consumer': 'acme' } });
      assert.equal(run.forwarded, true);
      assert.equal(run.context.consumer, 'globex');
      assert.equal(run.upstream.headers['x-consumer'], 'globex');
      assert.equal(run.upstream.headers['x-api-key'], undefined);
      assert.equal((await h.run({ headers: { 'x-api-key': ACME } })).context.consumer, 'acme');
    } finally {
      await h.close();
    }
  });

  test('missing or wrong key → 401 UNAUTHENTICATED with an ApiKey challenge', async () => {
    const h = await pluginHarness(apiKey, config());
    try {
      for (const [headers, message] of [
        [{}, 'an API key is required'],
        [{ 'x-api-key': '' }, 'an API key is required'],
        [{ 'x-api-key': `${ACME}x` }, 'invalid API key'],
        [{ 'x-api-key': hashKey(ACME) }, 'invalid API key'],
        [{ 'x-api-key': 'k'.repeat(100_000) }, 'invalid API key'],
      ] as Array<[Record<string, string>, string]>) {
        const run = await h.run({ headers });
        assert.equal(run.reply?.status, 401);
        assert.equal(run.reply?.code, 'UNAUTHENTICATED');
        assert.equal(run.reply?.message, message);
        assert.equal(run.reply?.headers?.['www-authenticate'], 'ApiKey realm="meshgate", header="x-api-key"');
      }
    } finally {
      await h.close();
    }
  });

  test('a key in a query parameter, when configured', async () => {
    const run = await runPlugin(apiKey, config({ query: 'apikey' }), { path: `/items?x=1&apikey=${encodeURIComponent(ACME)}` });
    assert.equal(run.context.consumer, 'acme');
    const off = await runPlugin(apiKey, config(), { path: `/items?apikey=${ACME}` });
    assert.equal(off.reply?.status, 401);
  });

  test('required: false lets keyless requests through, still refuses a wrong key', async () => {
    const h = await pluginHarness(apiKey, config({ required: false }));
    try {
      const anon = await h.run({ headers: { 'x-consumer': 'acme' } });
      assert.equal(anon.forwarded, true);
      assert.equal(anon.context.consumer, undefined);
      assert.equal(anon.upstream.headers['x-consumer'], undefined);
      assert.equal((await h.run({ headers: { 'x-api-key': 'nope' } })).reply?.status, 401);
    } finally {
      await h.close();
    }
  });

  test('config errors: a plain-text key, duplicate hashes, no place to read the key from', async () => {
    await assert.rejects(runPlugin(apiKey, { keys: [{ consumer: 'a', hash: ACME }] }), /hash/);
    await assert.rejects(runPlugin(apiKey, { keys: [{ consumer: 'a', hash: hashKey(ACME) }, { consumer: 'b', hash: hashKey(ACME) }] }), /same hash/);
    await assert.rejects(runPlugin(apiKey, { header: null, keys: [{ consumer: 'a', hash: hashKey(ACME) }] }), /header or query/);
  });
});
