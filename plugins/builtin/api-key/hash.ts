// How api-key stores keys: "sha256:<64 hex>" of the key's UTF-8 bytes, so a config file (or its
// backups) never holds a usable key. API keys are long random strings, so a plain SHA-256 is
// enough; a slow password hash would cost its CPU on every request. Shared with `meshgate key hash`.
import { createHash, randomBytes } from 'node:crypto';

export const HASH_PREFIX = 'sha256:';
export const HASH_PATTERN = '^sha256:[0-9a-f]{64}$';

/** The stored form of `key`. */
export function hashKey(key: string): string {
  return HASH_PREFIX + createHash('sha256').update(key, 'utf8').digest('hex');
}

/** A new random key: 32 bytes, base64url (43 characters). */
export function generateKey(): string {
  return randomBytes(32).toString('base64url');
}
