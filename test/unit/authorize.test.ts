// Inbound authorization rules (compiled once) and the config checks around mTLS: rules naming callers
// need the mesh section, the mesh section needs exactly one certificate source, and instances with
// and without an identity survive the store's validation.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildGatewayConfig, buildProxyConfig } from '../../config/load.ts';
import { ConfigError } from '../../config/errors.ts';
import { Authorizer } from '../../mesh-proxy/inbound/authorize.ts';
import { isInstance } from '../../mesh-proxy/store/types.ts';
import { parseSpiffeId } from '../../mesh-proxy/identity/spiffe.ts';

const MESH = { trustDomain: 'cluster.local', namespace: 'default' };
const id = (svc: string) => `spiffe://cluster.local/ns/default/sa/${svc}`;

describe('Authorizer', () => {
  const authz = new Authorizer(
    {
      default: 'deny',
      allow: [
        { name: 'edge-all', from: 'edge' },
        { from: ['orders', 'spiffe://other.org/ns/x/sa/billing'], methods: ['GET', 'HEAD'], paths: ['/items', '/prices/'] },
        { from: '*', paths: ['/public'] },
      ],
    },
    MESH,
  );

  test('a bare name is that service in our trust domain and namespace; full ids match exactly', () => {
    assert.equal(authz.deny(id('edge'), 'DELETE', '/anything?x=1'), undefined);
    assert.match(authz.deny('spiffe://other.org/ns/default/sa/edge', 'GET', '/x')!, /no rule allows spiffe:\/\/other\.org\/ns\/default\/sa\/edge to GET \/x/);
    assert.equal(authz.deny('spiffe://other.org/ns/x/sa/billing', 'GET', '/items/3'), undefined);
  });

  test('methods and whole-segment path prefixes; dot segments and encoded separators match no path rule', () => {
    assert.equal(authz.deny(id('orders'), 'GET', '/items'), undefined);
    assert.equal(authz.deny(id('orders'), 'HEAD', '/items/1?q'), undefined);
    assert.equal(authz.deny(id('orders'), 'GET', '/prices/9'), undefined);
    assert.match(authz.deny(id('orders'), 'POST', '/items')!, /rule allow\[1\] names the caller/);
    for (const p of ['/itemsx', '/items/../admin', '/items/%2e%2e/admin', '/items%2Fx', '/items\\..\\admin', '/items/.']) {
      assert.ok(authz.deny(id('orders'), 'GET', p) !== undefined, p);
    }
  });

  test('"*" is any verified identity; unauthenticated callers match only rules without from', () => {
    assert.equal(authz.deny(id('anyone'), 'POST', '/public/x'), undefined);
    assert.match(authz.deny(undefined, 'GET', '/public')!, /an unauthenticated caller/);
    const open = new Authorizer({ default: 'deny', allow: [{ paths: ['/health'] }] }, undefined);
    assert.equal(open.deny(undefined, 'GET', '/health'), undefined);
    assert.ok(open.deny(undefined, 'GET', '/admin'));
    assert.equal(new Authorizer({ default: 'allow', allow: [] }, undefined).deny(undefined, 'GET', '/x'), undefined);
  });
});

describe('mTLS configuration', () => {
  const proxy = { node: { service: 'orders' }, app: { port: 3000 } };
  const issues = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.issues.map((i) => `${i.path}: ${i.message}`).join('\n');
    }
    return '';
  };

  test('rules naming callers without a mesh section are refused at load, with the path', () => {
    const out = issues(() => buildProxyConfig({ ...proxy, inbound: { authorize: { allow: [{ from: 'edge' }] } } }, 'p.yaml', {}));
    assert.match(out, /inbound\.authorize\.allow\[0\]\.from: names callers, which needs mTLS/);
    // path/method-only rules are fine without mTLS
    assert.equal(issues(() => buildProxyConfig({ ...proxy, inbound: { authorize: { allow: [{ paths: ['/health'] }] } } }, 'p.yaml', {})), '');
  });

  test('the mesh section needs exactly one certificate source; bad identities in rules are named', () => {
    assert.match(issues(() => buildProxyConfig({ ...proxy, mesh: {} }, 'p.yaml', {})), /^mesh: needs exactly one of identity, signer or caDir \(none is set\)/);
    assert.match(issues(() => buildGatewayConfig({ mesh: { caDir: 'x', signer: { url: 'https://ca:9443', token: 'a'.repeat(16), ca: 'ca.pem' } } }, 'g.yaml', {})), /caDir and signer|signer and caDir/);
    assert.match(issues(() => buildProxyConfig({ ...proxy, mesh: { caDir: 'x' }, inbound: { authorize: { allow: [{ from: 'spiffe://bad' }] } } }, 'p.yaml', {})), /allow\[0\]\.from: expected a service name/);
    const ok = buildProxyConfig({ ...proxy, mesh: { caDir: 'x' }, inbound: { authorize: { allow: [{ from: ['edge', '*'] }] } } }, 'p.yaml', {});
    assert.equal(ok.mesh?.trustDomain, 'cluster.local');
    assert.equal(ok.inbound.authorize?.default, 'deny');
  });

  test('instances with and without an identity are valid store records; a non-string identity is not', () => {
    const base = { service: 'a', id: '1', address: '127.0.0.1', port: 1, dc: 'local', zone: '', metadata: {} };
    assert.ok(isInstance(base));
    assert.ok(isInstance({ ...base, identity: id('a') }));
    assert.ok(!isInstance({ ...base, identity: 42 }));
    assert.deepEqual(parseSpiffeId(id('a')), { trustDomain: 'cluster.local', namespace: 'default', service: 'a' });
    assert.equal(parseSpiffeId('spiffe://cluster.local/a/b'), undefined);
  });
});
