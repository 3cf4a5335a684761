// ip-filter: allow or deny clients by address (IPv4 and IPv6 CIDRs). The client is the TCP peer, or,
// behind trusted proxies, the right-most untrusted X-Forwarded-For address (shared/client-address.ts).
// Deny rules win over allow rules; with an allow list, everything not on it is denied.
//
//   - ip-filter: { allow: [10.0.0.0/8, "2001:db8::/32"], deny: [10.6.6.0/24], trustedProxies: [192.168.0.0/16] }
import { Type } from '@sinclair/typebox';
import { definePlugin, deny } from '../../api.ts';
import { PluginError } from '../../errors.ts';
import { AddressSet, TrustedProxies } from '../shared/client-address.ts';

const Cidrs = (description: string) => Type.Array(Type.String({ minLength: 1 }), { default: [], description });

export default definePlugin({
  name: 'ip-filter',
  schema: Type.Object(
    {
      allow: Cidrs('CIDRs or addresses allowed (empty: everyone not denied)'),
      deny: Cidrs('CIDRs or addresses denied'),
      trustedProxies: Cidrs('peers whose X-Forwarded-For is believed'),
    },
    { additionalProperties: false },
  ),
  create(c) {
    if (c.allow.length === 0 && c.deny.length === 0) throw new PluginError('PLUGIN_CONFIG_INVALID', 'set allow, deny or both');
    const parse = <T>(field: string, make: () => T): T => {
      try {
        return make();
      } catch (err) {
        throw new PluginError('PLUGIN_CONFIG_INVALID', `${field}: ${(err as Error).message}`);
      }
    };
    const allow = parse('allow', () => new AddressSet(c.allow));
    const denied = parse('deny', () => new AddressSet(c.deny));
    const proxies = parse('trustedProxies', () => new TrustedProxies(c.trustedProxies));
    return {
      onRequest(ctx) {
        const client = proxies.clientOf(ctx.clientIp, proxies.empty ? undefined : ctx.header('x-forwarded-for'));
        if (denied.has(client) || (!allow.empty && !allow.has(client))) return deny(403, 'FORBIDDEN', `client address ${client} is not allowed`);
        return undefined;
      },
    };
  },
});
