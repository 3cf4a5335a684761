// Build step (after tsc): writes dist/config/validators.generated.js, the config validators as ajv
// standalone code, from the same schema the sources compile at runtime.
import { writeFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import standaloneCode from 'ajv/dist/standalone/index.js';
import { GatewayConfigSchema, ProxyConfigSchema, ServicePolicySchema } from './schema.ts';
import { AJV_OPTIONS } from './validators.ts';

const ajv = new Ajv({ ...AJV_OPTIONS, code: { source: true, esm: true } });
ajv.addSchema(GatewayConfigSchema, 'gateway');
ajv.addSchema(ProxyConfigSchema, 'proxy');
ajv.addSchema(ServicePolicySchema, 'service');
let code = standaloneCode.default(ajv, { validateGateway: 'gateway', validateProxy: 'proxy', validateService: 'service' });
// ajv's ESM output still require()s its runtime helpers; make them imports.
const helpers = new Map<string, string>();
code = code.replace(/require\("(ajv\/dist\/runtime\/[\w-]+)"\)/g, (_m, mod: string) => {
  if (!helpers.has(mod)) helpers.set(mod, `__ajv${helpers.size}`);
  return helpers.get(mod)!;
});
const imports = [...helpers].map(([mod, name]) => `import ${name} from "${mod}.js";`).join('');
// ASCII only (non-ASCII characters appear in schema descriptions, inside string literals): V8 holds
// a source with any other character as a two-byte string, which doubled the 683 KB module's heap.
code = code.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
const out = new URL('./validators.generated.js', import.meta.url);
writeFileSync(out, imports + code.replace(/^"use strict";/, ''));
console.log(`wrote ${out.pathname} (${Math.round(code.length / 1024)} KB)`);
