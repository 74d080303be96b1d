/**
 * `vault run --credential NAME[=ENV] -- CMD ARGS`: runs a command with credentials in its
 * environment and its output scrubbed of them (the same injection as the MCP tool). Leases
 * taken for the run are revoked when it ends. Exits with the command's exit code.
 */
import type { Command } from 'commander';
import { durationMs } from '../lib/duration.js';
import { missingTokenMessage } from '../mcp/connection.js';
import { type CredentialUse, runWithCredentials } from '../mcp/run-with-credentials.js';
import { Vault } from '../sdk/index.js';
import { childExitCode, childStartError } from './child-process.js';
import { type CommonOptions, collect, connectOptions } from './context.js';
import { UsageError } from './exit-codes.js';

function parseUses(credentials: string[] = [], leases: string[] = []): CredentialUse[] {
  const uses: CredentialUse[] = credentials.map((spec) => {
    const [credential, env] = spec.split('=', 2) as [string, string | undefined];
    if (!credential) throw new UsageError(`--credential must look like NAME or NAME=ENV_VAR, not "${spec}"`);
    return env ? { credential, env } : { credential };
  });
  for (const spec of leases) {
    const [leaseId, env] = spec.split('=', 2) as [string, string | undefined];
    if (!leaseId || !env) throw new UsageError(`--lease must look like LEASE_ID=ENV_VAR, not "${spec}"`);
    uses.push({ leaseId, env });
  }
  if (uses.length === 0) throw new UsageError('name at least one --credential (or --lease) to inject');
  return uses;
}

export function register(program: Command): void {
  program
    .command('run')
    .description(
      'Run a command with credentials as environment variables, its output scrubbed of their values',
    )
    .option(
      '--credential <name[=ENV]>',
      'lease this credential for the run (variable name defaults to NAME upper-cased)',
      collect,
    )
    .option('--lease <id=ENV>', 'use a lease you hold (repeatable)', collect)
    .option('--timeout <duration>', 'kill the command after this long (its leases end then too)')
    .option('--token-file <path>', 'the token to run with (default $VAULT_TOKEN_FILE, else `vault login`)')
    .option(
      '--token-from-env',
      'use $VAULT_TOKEN (ignored otherwise: an inherited VAULT_TOKEN is usually not meant for this run)',
    )
    .option('--addr <url>', 'server address (default $VAULT_ADDR)')
    .option('--tenant <id>', 'tenant (default $VAULT_TENANT)')
    .argument('<command...>', 'the command and its arguments, after --')
    .passThroughOptions()
    .addHelpText(
      'after',
      '\nExample:\n  vault run --credential stripe-api-key=STRIPE_KEY -- ./deploy.sh\n\nExits with the exit code of the command.',
    )
    .action(
      async (
        argv: string[],
        options: CommonOptions & {
          credential?: string[];
          lease?: string[];
          timeout?: string;
          tokenFile?: string;
          tokenFromEnv?: boolean;
        },
      ) => {
        const uses = parseUses(options.credential, options.lease);
        let timeoutMs: number | undefined;
        if (options.timeout) {
          try {
            timeoutMs = durationMs(options.timeout);
          } catch (err) {
            throw new UsageError(`--timeout: ${(err as Error).message}`);
          }
        }
        const [file, ...args] = argv as [string, ...string[]];
        const connection = connectOptions(options, {
          ambientToken: options.tokenFromEnv ?? false,
          ...(options.tokenFile !== undefined && { tokenFile: options.tokenFile }),
        });
        if (!connection.token) throw new UsageError(missingTokenMessage('vault run', connection));
        const vault = await Vault.connect(connection);
        const stop = new AbortController();
        // Ctrl-C reaches the command itself (same process group); wait for it to exit, then revoke.
        const onInt = () => undefined;
        const onTerm = () => stop.abort();
        process.on('SIGINT', onInt);
        process.on('SIGTERM', onTerm);
        try {
          const result = await runWithCredentials(vault, {
            uses,
            file,
            args,
            baseEnv: process.env,
            callerToken: connection.token,
            purpose: 'vault run',
            ...(timeoutMs !== undefined && { timeoutMs }),
            inheritStdin: true,
            onStdout: (text) => process.stdout.write(text),
            onStderr: (text) => process.stderr.write(text),
            signal: stop.signal,
          });
          if (result.timedOut)
            process.stderr.write(`vault run: ${file} ran past --timeout ${options.timeout} and was killed\n`);
          process.exitCode = childExitCode(result);
        } catch (err) {
          throw childStartError(err, file);
        } finally {
          process.off('SIGINT', onInt);
          process.off('SIGTERM', onTerm);
        }
      },
    );
}
