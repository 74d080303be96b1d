/**
 * The `vault` program: assembles the command group that runs (see ./command-index.ts) and
 * turns errors into a message, a hint and an exit code.
 */
import { Command } from 'commander';
import { groupOf, registerSummaries } from './command-index.js';
import { exitCodeTable } from './exit-code-table.js';
import { cliVersion } from './version.js';

const program = new Command('vault')
  .description('Vault: credentials for people and AI agents, handed out as audited, time-limited leases')
  .version(cliVersion())
  .enablePositionalOptions()
  .showHelpAfterError('(run with --help for usage)')
  .addHelpText(
    'after',
    `\nConnection: VAULT_ADDR (default http://127.0.0.1:8200), VAULT_TOKEN or VAULT_TOKEN_FILE\n(else the token stored by \`vault login\`), VAULT_TENANT; VAULT_CACERT (a PEM file) for a private CA.\nStart locally with: vault dev --export-file vault.env --detach && . ./vault.env\n\nExit codes:\n${exitCodeTable
      .map(([code, meaning]) => `  ${String(code).padStart(2)}  ${meaning}`)
      .join('\n')}\n  \`vault run\` exits with the exit code of its command.`,
  );

// Only the group that runs is loaded (`vault help GROUP` too); help and unknown commands get summaries.
const words = process.argv.slice(2).filter((arg) => !arg.startsWith('-'));
const group = groupOf(words[0] === 'help' ? words[1] : words[0]);
if (group) (await group.load()).register(program);
else registerSummaries(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const [{ VaultApiError }, { exitCodeFor, hintFor, UsageError }] = await Promise.all([
    import('../sdk/index.js'),
    import('./exit-codes.js'),
  ]);
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
