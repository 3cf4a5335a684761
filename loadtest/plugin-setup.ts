// What the "plugins" scenario needs around its targets: a signing key and a token for jwt-auth (the
// public key goes to the gateway, the token to the load generator), and a redis-server for the
// global rate limit when the binary exists (the in-memory store otherwise, said in the output).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { startRedis, type Pinned } from './proc.ts';

export interface PluginSetup {
  env: Record<string, string>;
  headers: Record<string, string>;
  redis: Pinned | undefined;
  storeNote: string;
}

export async function preparePlugins(workDir: string, redisPort: number, core: number): Promise<PluginSetup> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const keyFile = join(workDir, 'jwt-public.pem');
  writeFileSync(keyFile, await exportSPKI(publicKey));
  const token = await new SignJWT({ scope: 'bench' })
    .setProtectedHeader({ alg: 'RS256' })
    .setIssuer('loadtest')
    .setAudience('bench')
    .setSubject('user-1')
    .setExpirationTime('2h')
    .sign(privateKey);
  const redis = await startRedis(redisPort, core);
  return {
    env: { JWT_PUBLIC_KEY: keyFile, ...(redis ? { REDIS_URL: `redis://127.0.0.1:${redisPort}` } : {}) },
    headers: { authorization: `Bearer ${token}`, origin: 'https://app.example.com' },
    redis,
    storeNote: redis ? 'rate-limit counters in a redis-server on the load core (the default lease of 50 ms: the busy caller is served from slices of its limit taken ahead, one Lua script call per lease)' : 'rate-limit counters in memory (redis-server not installed)',
  };
}

