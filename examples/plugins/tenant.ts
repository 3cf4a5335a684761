// An example custom plugin: every request must name its tenant in a header; known tenants are
// forwarded upstream as a normalized header, unknown ones get 403, and responses say which tenant
// was served. Load it with `plugins: { dir: examples/plugins }` and enable it on a route:
//
//   routes:
//     - name: catalog
//       service: catalog
//       plugins:
//         - tenant: { header: x-tenant, tenants: [acme, globex] }
import { Type } from '@sinclair/typebox';
import { definePlugin, deny } from '../../plugins/api.ts';

export default definePlugin({
  name: 'tenant',
  schema: Type.Object(
    {
      header: Type.String({ minLength: 1, default: 'x-tenant', description: 'the request header naming the tenant' }),
      tenants: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'the tenants allowed through' }),
      forwardAs: Type.String({ minLength: 1, default: 'x-tenant-id', description: 'the header the upstream receives' }),
    },
    { additionalProperties: false },
  ),
  // create() runs once per config snapshot: build everything the handlers need here, not per request.
  create(config, env) {
    const allowed = new Set(config.tenants.map((t) => t.toLowerCase()));
    const refused = env.metrics.counter('meshgate_plugin_tenant_refused_total', 'Requests refused by the tenant plugin, by route.', ['route']);
    return {
      onRequest(ctx) {
        const tenant = ctx.header(config.header)?.trim().toLowerCase();
        if (tenant === undefined || tenant === '') return deny(400, 'TENANT_REQUIRED', `the ${config.header} header is required`);
        if (!allowed.has(tenant)) {
          refused.inc({ route: ctx.route });
          return deny(403, 'TENANT_UNKNOWN', `tenant "${tenant}" is not served here`);
        }
        ctx.locals.set('tenant', tenant);
        return undefined;
      },
      beforeUpstream(ctx) {
        ctx.removeHeader(config.header);
        ctx.setHeader(config.forwardAs, ctx.locals.get('tenant') as string);
      },
      onResponse(ctx) {
        const tenant = ctx.locals.get('tenant');
        if (typeof tenant === 'string') ctx.setResponseHeader('x-served-tenant', tenant);
      },
    };
  },
});
