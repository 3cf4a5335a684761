// WebSocket's config and classification: routes opt in (default off), idle timeouts resolve from the
// route or the service, and only the `websocket` upgrade token is tunnelled.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { Registry } from 'prom-client';
import { buildGatewayConfig } from '../../config/load.ts';
import { compileRoutes } from '../../gateway/router/route-table.ts';
import { compilePolicy } from '../../mesh-proxy/client/policy.ts';
import { upgradeKind } from '../../mesh-proxy/http/upgrade.ts';
import { RequestMetrics } from '../../mesh-proxy/observe/request-metrics.ts';

const NO_ENV = {};

describe('WebSocket config', () => {
  test('routes refuse upgrades unless they opt in; idle timeouts come from the route or the service', () => {
    const c = buildGatewayConfig(
      {
        services: { chat: { timeouts: { websocketIdle: '5m' } } },
        routes: [
          { name: 'plain', service: 'chat' },
          { name: 'ws', service: 'chat', websocket: true, websocketIdleTimeout: '30s' },
        ],
      },
      'gw.yaml',
      NO_ENV,
    );
    const table = compileRoutes(c.routes, new RequestMetrics(new Registry(), 'local'));
    assert.equal(table.routes[0].websocket, false);
    assert.equal(table.routes[0].websocketIdleMs, 0);
    assert.equal(table.routes[1].websocket, true);
    assert.equal(table.routes[1].websocketIdleMs, 30_000);
    assert.equal(compilePolicy(c.services.chat).websocketIdleMs, 300_000);
    assert.equal(compilePolicy(buildGatewayConfig({ services: { x: {} } }, 'gw.yaml', NO_ENV).services.x).websocketIdleMs, 3_600_000);
  });

  test('a bad idle timeout is refused at load with its path', () => {
    assert.throws(
      () => buildGatewayConfig({ services: { chat: {} }, routes: [{ name: 'ws', service: 'chat', websocket: 'yes' }] }, 'gw.yaml', NO_ENV),
      /routes\[0\]\.websocket/,
    );
  });

  test('only the websocket token is tunnelled', () => {
    const kind = (upgrade: string | undefined) => upgradeKind({ headers: { upgrade } } as unknown as IncomingMessage);
    assert.equal(kind('websocket'), 'websocket');
    assert.equal(kind('WebSocket'), 'websocket');
    assert.equal(kind('h2c'), 'other');
    assert.equal(kind('websocket, h2c'), 'other');
    assert.equal(kind(undefined), 'other');
  });
});
