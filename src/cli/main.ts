/**
 * The `vault` command. Each command group lives in its own file and registers itself; this
 * file only assembles them and turns errors into a message, a hint and an exit code.
 */
import { Command } from 'commander';
import { VaultApiError } from '../sdk/index.js';
import { register as registerAudit } from './audit.js';
import { register as registerCredentials } from './credentials.js';
import { exitCodeFor, exitCodeTable, hintFor, UsageError } from './exit-codes.js';
import { register as registerLease } from './lease.js';
import { register as registerLogin } from './login.js';
import { register as registerPolicies } from './policies.js';
import { register as registerRun } from './run.js';
import { register as registerTokens } from './tokens.js';

type Register = (program: Command) => void;
type Group = { names: string[] } & ({ register: Register } | { load: () => Promise<{ register: Register }> });

/**
 * In help order. The server-side groups (server, store, Kubernetes client) take seconds to
 * load, so they are imported only when their command runs, or for help and unknown commands.
 */
const groups: Group[] = [
  { names: ['dev'], load: () => import('./dev.js') },
  { names: ['server'], load: () => import('./server.js') },
  { names: ['login', 'logout', 'whoami'], register: registerLogin },
  { names: ['credentials', 'creds'], register: registerCredentials },
  { names: ['lease', 'leases'], register: registerLease },
  { names: ['run'], register: registerRun },
  { names: ['broker'], load: () => import('./broker.js') },
  { names: ['audit'], register: registerAudit },
  { names: ['tokens', 'token'], register: registerTokens },
  { names: ['policies', 'policy', 'identities', 'identity'], register: registerPolicies },
  { names: ['mcp'], load: () => import('./mcp.js') },
  { names: ['agent'], load: () => import('./agent.js') },
  { names: ['operator'], load: () => import('./operator.js') },
  { names: ['webhook'], load: () => import('./webhook.js') },
];

const program = new Command('vault')
  .description('Vault: credentials for people and AI agents, handed out as audited, time-limited leases')
  .version('0.1.0')
  .enablePositionalOptions()
  .showHelpAfterError('(run with --help for usage)')
  .addHelpText(
    'after',
    `\nConnection: VAULT_ADDR (default http://127.0.0.1:8200), VAULT_TOKEN or VAULT_TOKEN_FILE\n(else the token stored by \`vault login\`), VAULT_TENANT. Start locally with: vault dev > vault.env & sleep 5; . ./vault.env\n\nExit codes:\n${exitCodeTable
      .map(([code, meaning]) => `  ${String(code).padStart(2)}  ${meaning}`)
      .join('\n')}\n  \`vault run\` exits with the exit code of its command.`,
  );

const command = process.argv.slice(2).find((arg) => !arg.startsWith('-'));
const known = groups.some((group) => command !== undefined && group.names.includes(command));
for (const group of groups) {
  if ('register' in group) group.register(program);
  else if (!known || group.names.includes(command!)) (await group.load()).register(program);
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
