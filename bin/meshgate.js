#!/usr/bin/env node
// The `meshgate` CLI: the compiled build when it is current, else the TypeScript sources (entry.js).
import { load } from './entry.js';

const { main } = await load('bin/cli');
process.exitCode = await main(process.argv.slice(2));
