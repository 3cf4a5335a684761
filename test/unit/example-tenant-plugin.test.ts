// The example plugin of docs/plugins.md, tested the way the guide tells plugin authors to test
// theirs (plugins/testing.ts), so the guide's example stays true.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../config/errors.ts';
import { pluginHarness, runPlugin } from '../../plugins/testing.ts';
import tenant from '../../examples/plugins/tenant.ts';

const config = { tenants: ['acme', 'globex'] };

describe('the example tenant plugin', () => {
  test('a known tenant goes upstream as x-tenant-id; the response names it', async () => {
    const run = await runPlugin(tenant, config, { headers: { 'x-tenant': ' ACME ' } });
    assert.equal(run.reply, undefined);
    assert.equal(run.forwarded, true);
    assert.equal(run.upstream.headers['x-tenant-id'], 'acme');
    assert.equal(run.upstream.headers['x-tenant'], undefined, 'the client header is not forwarded');
    assert.equal(run.respond(200, { 'content-type': 'text/plain' })['x-served-tenant'], 'acme');
  });

  test('no tenant header: 400 TENANT_REQUIRED', async () => {
    const run = await runPlugin(tenant, config);
    assert.equal(run.forwarded, false);
    assert.equal(run.reply?.status, 400);
    assert.equal(run.reply?.code, 'TENANT_REQUIRED');
  });

  test('an unknown tenant: 403 TENANT_UNKNOWN, and no x-served-tenant on the reply', async () => {
    const run = await runPlugin(tenant, config, { headers: { 'x-tenant': 'initech' } });
    assert.equal(run.reply?.status, 403);
    assert.equal(run.reply?.code, 'TENANT_UNKNOWN');
    assert.equal(run.reply?.headers?.['x-served-tenant'], undefined);
  });

  test('header and forwardAs are configurable', async () => {
    const run = await runPlugin(tenant, { ...config, header: 'x-org', forwardAs: 'x-org-id' }, { headers: { 'x-org': 'globex' } });
    assert.equal(run.upstream.headers['x-org-id'], 'globex');
    assert.equal(run.upstream.headers['x-org'], undefined);
  });

  test('in dry-run an unknown tenant goes through', async () => {
    const run = await runPlugin(tenant, config, { headers: { 'x-tenant': 'initech' } }, { dryRun: true });
    assert.equal(run.reply, undefined);
    assert.equal(run.forwarded, true);
  });

  test('one instance serves many requests (a harness keeps it)', async () => {
    const h = await pluginHarness(tenant, config);
    try {
      assert.equal((await h.run({ headers: { 'x-tenant': 'acme' } })).forwarded, true);
      assert.equal((await h.run({ headers: { 'x-tenant': 'nope' } })).reply?.status, 403);
      assert.equal((await h.run({ headers: { 'x-tenant': 'globex' } })).upstream.headers['x-tenant-id'], 'globex');
    } finally {
      await h.close();
    }
  });

  test('an empty tenant list is a config error at the plugin path', async () => {
    const err = await runPlugin(tenant, { tenants: [] }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.equal(err.issues[0].path, 'plugins[0].tenant.tenants');
  });
});
