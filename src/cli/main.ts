#!/usr/bin/env node
/**
 * The `vault` command's entry point. `--version` is answered before anything else loads;
 * everything else is in ./program.js, which loads only the command group that runs, so
 * `vault --version` and `vault --help` cost little more than Node's own start-up.
 */
import { cliVersion } from './version.js';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`${cliVersion()}\n`);
} else {
  await import('./program.js');
}
