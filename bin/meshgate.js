#!/usr/bin/env node
// The `meshgate` CLI. Sources are TypeScript, loaded through tsx's loader (transpiled once at load;
// the request path runs plain JavaScript), so `npm install` needs no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./cli.ts');
process.exitCode = await main(process.argv.slice(2));
