/**
 * The `vault agent` and `vault webhook` commands on their own, for tests that run them as
 * processes (src/cli/main.ts assembles the same register functions for users). Only the
 * command that runs is loaded, as in main.ts, so the agent's memory is measured alone.
 */
import { Command } from 'commander';

const program = new Command('vault');
const command = process.argv[2];
if (command === 'agent') (await import('../../src/cli/agent.js')).register(program);
else (await import('../../src/cli/webhook.js')).register(program);
await program.parseAsync(process.argv);
