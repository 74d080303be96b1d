/**
 * `vault broker --credential NAME[=ENV] [--for agent:NAME] -- CMD ARGS`: runs a command behind
 * the credential broker. The command gets a placeholder per credential and HTTPS_PROXY; the
 * broker puts the value on the wire only to the hosts the credential names. The broker leases
 * with its own token (--token-file, $VAULT_BROKER_TOKEN_FILE, else your usual token), which
 * never reaches the command, and refuses an agent's, a system or a root-policy token. Exits
 * with the command's exit code.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { BrokerUse } from '../broker/broker.js';
import { runBrokered } from '../broker/run.js';
import { systemClock } from '../lib/clock.js';
import { durationMs } from '../lib/duration.js';
import { requireBrokerToken, ServingIdentityError } from '../mcp/serving-identity.js';
import { Vault } from '../sdk/index.js';
import { childExitCode, childStartError } from './child-process.js';
import { type CommonOptions, collect, connectOptions, parseIdentity } from './context.js';
import { UsageError } from './exit-codes.js';

interface BrokerOptions extends CommonOptions {
  credential?: string[];
  for?: string;
  ttl: string;
  otherHosts: string;
  tokenFile?: string;
  upstreamCa?: string;
}

function parseUses(specs: string[] = []): BrokerUse[] {
  if (specs.length === 0) throw new UsageError('name at least one --credential to broker');
  return specs.map((spec) => {
    const [credential, env] = spec.split('=', 2) as [string, string | undefined];
    if (!credential) throw new UsageError(`--credential must look like NAME or NAME=ENV_VAR, not "${spec}"`);
    return env ? { credential, env } : { credential };
  });
}

export function register(program: Command): void {
  program
    .command('broker')
    .description(
      'Run a command behind the credential broker: it holds placeholders, the broker puts values on the wire',
    )
    .option(
      '--credential <name[=ENV]>',
      'broker this credential (repeatable; it must name metadata.hosts)',
      collect,
    )
    .option(
      '--for <identity>',
      "whom the leases are for, e.g. agent:claude-code (default: the token's identity)",
    )
    .option('--ttl <duration>', 'lease lifetime; requests after it are refused', '1h')
    .option('--other-hosts <policy>', 'hosts no credential names: "refuse" or "tunnel" (untouched)', 'refuse')
    .option('--token-file <path>', "the broker's token (default $VAULT_BROKER_TOKEN_FILE, else your token)")
    .option('--upstream-ca <file>', 'extra CAs (PEM) to trust for upstream APIs, besides the system roots')
    .option('--addr <url>', 'server address (default $VAULT_ADDR)')
    .option('--tenant <id>', 'tenant (default $VAULT_TENANT)')
    .argument('<command...>', 'the command and its arguments, after --')
    .passThroughOptions()
    .addHelpText(
      'after',
      '\nExample:\n  vault broker --credential stripe-api-key --for agent:claude-code -- \\\n' +
        '    sh -c \'curl -H "Authorization: Bearer $STRIPE_API_KEY" https://api.stripe.com/v1/charges\'\n\n' +
        'The command sees STRIPE_API_KEY=vault-ph-..., HTTPS_PROXY and the broker CA (SSL_CERT_FILE,\n' +
        'CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS). Exits with the exit code of the command.',
    )
    .action(async (argv: string[], options: BrokerOptions) => {
      const uses = parseUses(options.credential);
      if (options.otherHosts !== 'refuse' && options.otherHosts !== 'tunnel')
        throw new UsageError(`--other-hosts must be "refuse" or "tunnel", not "${options.otherHosts}"`);
      try {
        durationMs(options.ttl);
      } catch (err) {
        throw new UsageError(`--ttl: ${(err as Error).message}`);
      }
      const connection = connectOptions(options);
      const tokenFile = options.tokenFile ?? process.env.VAULT_BROKER_TOKEN_FILE;
      const token = tokenFile ? readToken(tokenFile) : connection.token;
      const vault = await Vault.connect({ ...connection, ...(token !== undefined && { token }) });
      try {
        requireBrokerToken(vault.self, 'vault broker');
      } catch (err) {
        if (err instanceof ServingIdentityError) throw new UsageError(err.message);
        throw err;
      }
      const agent = options.for ? parseIdentity(options.for, '--for') : vault.self.identity;
      const [file, ...args] = argv as [string, ...string[]];
      const stop = new AbortController();
      const onInt = () => undefined;
      const onTerm = () => stop.abort();
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
      try {
        const result = await runBrokered({
          vault,
          agent,
          uses,
          ttl: options.ttl,
          allowOtherHosts: options.otherHosts === 'tunnel',
          ...(options.upstreamCa && { upstream: { ca: readCa(options.upstreamCa) } }),
          clock: systemClock,
          file,
          args,
          baseEnv: process.env,
          inheritStdin: true,
          onStdout: (text) => process.stdout.write(text),
          onStderr: (text) => process.stderr.write(text),
          signal: stop.signal,
        });
        process.exitCode = childExitCode(result);
      } catch (err) {
        throw childStartError(err, file);
      } finally {
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
      }
    });
}

function readToken(path: string): string {
  try {
    const token = readFileSync(path, 'utf8').trim();
    if (token) return token;
  } catch (err) {
    throw new UsageError(`cannot read the broker token file ${path}: ${(err as Error).message}`);
  }
  throw new UsageError(`the broker token file ${path} is empty`);
}

function readCa(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --upstream-ca ${path}: ${(err as Error).message}`);
  }
}
