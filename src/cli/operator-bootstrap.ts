import type { Command } from 'commander';
import { ROOT_POLICY, systemContext } from '../core/index.js';
import { durationMs } from '../lib/duration.js';
import { createLogger } from '../lib/logger.js';
import { openVault } from '../server/vault-process.js';
import { addStoreOptions, configOrExit, exitOnStartupError, storeConfigInput } from './server.js';

/**
 * `vault operator root-token`: the first token of a production install, minted directly in
 * the store by someone who holds the root key (there is no unauthenticated way to get one
 * over the API). Audited like every token; short-lived by default.
 */
export function registerBootstrapCommands(operator: Command): void {
  addStoreOptions(
    operator
      .command('root-token')
      .description('Mint a system root token directly in the store (needs the root key); prints it on stdout')
      .requiredOption('--tenant <id>', 'the tenant it is issued in (created if missing)')
      .option('--name <name>', 'the human it is for, as audit records will name it', 'operator')
      .option('--ttl <duration>', 'how long it lives', '1h'),
  ).action(async (options: Record<string, unknown>) => {
    const config = configOrExit(storeConfigInput(options, process.env));
    const logger = createLogger({ level: 'warn', destination: process.stderr });
    let ttlMs: number;
    try {
      ttlMs = durationMs(String(options.ttl));
    } catch (err) {
      process.stderr.write(`vault operator root-token: --ttl: ${(err as Error).message}\n`);
      process.exit(2);
    }
    const { store, core } = await openVault(config, logger).catch(exitOnStartupError('vault operator'));
    try {
      const tenant = String(options.tenant);
      const identity = { type: 'human' as const, name: String(options.name) };
      const ctx = systemContext(tenant, identity);
      await core.tenants.ensure(tenant, ctx);
      const minted = await core.tokens.mint(ctx, tenant, {
        identity,
        policies: [ROOT_POLICY],
        ttlMs,
        system: true,
        displayName: 'root token minted by vault operator root-token',
      });
      process.stderr.write(
        `System root token for ${identity.type}:${identity.name} in tenant ${tenant}, expires ${minted.expiresAt} (accessor ${minted.accessor}). Use it to create narrower tokens and policies, then revoke it.\n`,
      );
      process.stdout.write(`${minted.token}\n`);
    } finally {
      await store.close();
    }
  });
}
