/**
 * The `vault` command. Each command group lives in its own file and registers itself; this
 * file only assembles them and turns errors into a message, a hint and an exit code.
 */
import { Command } from 'commander';
import { VaultApiError } from '../sdk/index.js';
import { register as registerAgent } from './agent.js';
import { register as registerAudit } from './audit.js';
import { register as registerCredentials } from './credentials.js';
import { register as registerDev } from './dev.js';
import { exitCodeFor, exitCodeTable, hintFor, UsageError } from './exit-codes.js';
import { register as registerLease } from './lease.js';
import { register as registerLogin } from './login.js';
import { register as registerMcp } from './mcp.js';
import { register as registerOperator } from './operator.js';
import { register as registerPolicies } from './policies.js';
import { register as registerRun } from './run.js';
import { register as registerServer } from './server.js';
import { register as registerTokens } from './tokens.js';

const program = new Command('vault')
  .description('Vault: credentials for people and AI agents, handed out as audited, time-limited leases')
  .version('0.1.0')
  .enablePositionalOptions()
  .showHelpAfterError('(run with --help for usage)')
  .addHelpText(
    'after',
    `\nConnection: VAULT_ADDR (default http://127.0.0.1:8200), VAULT_TOKEN or VAULT_TOKEN_FILE\n(else the token stored by \`vault login\`), VAULT_TENANT. Start locally with: eval "$(vault dev)"\n\nExit codes:\n${exitCodeTable
      .map(([code, meaning]) => `  ${String(code).padStart(2)}  ${meaning}`)
      .join('\n')}\n  \`vault run\` exits with the exit code of its command.`,
  );

for (const register of [
  registerDev,
  registerServer,
  registerLogin,
  registerCredentials,
  registerLease,
  registerRun,
  registerAudit,
  registerTokens,
  registerPolicies,
  registerMcp,
  registerAgent,
  registerOperator,
]) {
  register(program);
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  const where = err instanceof VaultApiError && err.requestId ? ` (request ${err.requestId})` : '';
  process.stderr.write(`vault: ${message}${where}\n`);
  const hint = hintFor(err);
  if (hint) process.stderr.write(`hint: ${hint}\n`);
  else if (err instanceof UsageError) process.stderr.write('hint: add --help to the command for its usage\n');
  else if (!(err instanceof Error) || err.constructor === Error || err instanceof TypeError) {
    if (process.env.VAULT_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  }
  process.exitCode = exitCodeFor(err);
}
