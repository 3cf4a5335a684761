// `meshgate key`: makes API keys for the api-key plugin and the hashes its config stores.
import { parseArgs } from 'node:util';
import { generateKey, hashKey } from '../../plugins/builtin/api-key/hash.ts';
import { EXIT_OK, EXIT_USAGE } from '../lifecycle.ts';

export const KEY_HELP = `Usage: meshgate key hash [KEY]
       meshgate key new

API keys for the api-key plugin, whose config stores only "sha256:<hex>" hashes.

  hash   prints the hash of KEY, or of the key read from standard input (one line; a trailing
         newline is ignored), so the key stays out of the shell history. Same as
         printf %s KEY | sha256sum
  new    prints a new random key (32 bytes, base64url) and its hash, tab-separated

Options:
  -h, --help   show this help`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

export async function keyCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({ args: rest, options: { help: { type: 'boolean', short: 'h' } }, allowPositionals: true });
  if (values.help || sub === '--help' || sub === '-h') {
    process.stdout.write(`${KEY_HELP}\n`);
    return EXIT_OK;
  }
  if (sub === 'new' && positionals.length === 0) {
    const key = generateKey();
    process.stdout.write(`${key}\t${hashKey(key)}\n`);
    return EXIT_OK;
  }
  if (sub === 'hash' && positionals.length <= 1) {
    const key = positionals[0] ?? (await readStdin());
    if (key === '') {
      process.stderr.write('meshgate key hash: empty key\n');
      return EXIT_USAGE;
    }
    process.stdout.write(`${hashKey(key)}\n`);
    return EXIT_OK;
  }
  process.stderr.write(`meshgate key: expected "hash [KEY]" or "new"\n\n${KEY_HELP}\n`);
  return EXIT_USAGE;
}
