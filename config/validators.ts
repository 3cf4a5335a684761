// The config validators. The compiled build carries them precompiled (ajv standalone code, written
// by `npm run build`): starting a proxy then loads neither TypeBox nor ajv's compiler, which saves
// about 20 MB of resident memory and half a second of CPU. Running from the sources, they are
// compiled here from the schema.
import type { ValidateFunction } from 'ajv';
import type { GatewayConfig, ProxyConfig, ServicePolicy } from './schema.ts';

export interface Validators {
  validateGateway: ValidateFunction<GatewayConfig>;
  validateProxy: ValidateFunction<ProxyConfig>;
  validateService: ValidateFunction<ServicePolicy>;
}

/** The ajv options both paths use: every error, defaults filled in, the failing schema in errors. */
export const AJV_OPTIONS = { allErrors: true, useDefaults: true, verbose: true, strict: false } as const;

async function load(): Promise<Validators> {
  try {
    // Only dist/ has this file (see build-validators.ts); the path is built so tsc leaves it alone.
    const generated = './validators.generated' + '.js';
    return (await import(generated)) as Validators;
  } catch {
    return compile();
  }
}

export async function compile(): Promise<Validators> {
  const [{ Ajv }, schema] = await Promise.all([import('ajv'), import('./schema.ts')]);
  const ajv = new Ajv(AJV_OPTIONS);
  return {
    validateGateway: ajv.compile<GatewayConfig>(schema.GatewayConfigSchema),
    validateProxy: ajv.compile<ProxyConfig>(schema.ProxyConfigSchema),
    validateService: ajv.compile<ServicePolicy>(schema.ServicePolicySchema),
  };
}

export const validators: Validators = await load();
