/**
 * The `vault agent` and `vault webhook` commands on their own, for tests that run them as
 * processes (src/cli/main.ts assembles the same register functions for users).
 */
import { Command } from 'commander';
import { register as registerAgent } from '../../src/cli/agent.js';
import { register as registerWebhook } from '../../src/cli/webhook.js';

const program = new Command('vault');
registerAgent(program);
registerWebhook(program);
await program.parseAsync(process.argv);
