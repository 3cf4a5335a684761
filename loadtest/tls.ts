// The TLS material the HTTPS scenarios share: one self-signed certificate for 127.0.0.1, made once
// per work directory, as PEM files (and the cert+key bundle HAProxy wants).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { selfSignedCertificate } from '../gateway/listeners/dev-certificate.ts';

export interface BenchCert {
  cert: string;
  key: string;
  bundle: string;
}

export async function benchCertificate(workDir: string): Promise<BenchCert> {
  const dir = join(workDir, 'tls');
  const files = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), bundle: join(dir, 'bundle.pem') };
  if (existsSync(files.bundle)) return files;
  mkdirSync(dir, { recursive: true });
  const pair = await selfSignedCertificate(['localhost', '127.0.0.1'], 2);
  writeFileSync(files.cert, pair.cert);
  writeFileSync(files.key, pair.key);
  writeFileSync(files.bundle, pair.cert + pair.key);
  return files;
}

/** A GET over HTTPS (HTTP/1.1) answered 200: the target is up. */
export function httpsOk(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/', rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.setTimeout(2000, () => req.destroy());
  });
}
