import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { sealedPrefixes } from '../core/keys.js';
import { createKeyring } from '../crypto/keyring.js';
import { rootKeyFromFile } from '../crypto/root-key.js';
import { createLogger } from '../lib/logger.js';
import { loadRootKeys, openConfiguredStore } from '../server/vault-process.js';
import { embeddedStoreFile } from '../store/embedded-store.js';
import { createProgress } from './progress.js';
import { addStoreOptions, configOrExit, exitOnStartupError, storeConfigInput } from './server.js';

/**
 * Key administration under `vault operator`: rotations run against the store directly,
 * online (servers keep serving), and resume where they stopped if interrupted.
 */
export function registerKeyCommands(operator: Command): void {
  const open = async (options: Record<string, unknown>) => {
    const config = configOrExit(storeConfigInput(options, process.env));
    // These commands act on keys that exist: opening the embedded store would create an empty one.
    if (config.store === 'embedded' && !existsSync(join(config.dataDir!, embeddedStoreFile))) {
      process.stderr.write(
        `vault operator: no store in ${config.dataDir} (no ${embeddedStoreFile}): give --data-dir of an existing Vault (\`vault dev\` keeps its store in DATA_DIR/store)\n`,
      );
      process.exit(2);
    }
    const logger = createLogger({
      level: config.logLevel === 'info' ? 'warn' : config.logLevel,
      destination: process.stderr,
    });
    const store = await openConfiguredStore(config, logger).catch(exitOnStartupError('vault operator'));
    const roots = await loadRootKeys(config).catch(exitOnStartupError('vault operator'));
    return { store, roots, keyring: createKeyring({ store, roots, sealedPrefixes, logger }) };
  };

  addStoreOptions(
    operator
      .command('rotate-tenant-key')
      .description('Create a new key version for a tenant and re-wrap every data key under it (resumable)')
      .argument('<tenant>', 'the tenant whose key to rotate')
      .option('--json', 'print the result as JSON'),
  ).action(async (tenant: string, options: Record<string, unknown>) => {
    const { store, keyring } = await open(options);
    const progress = createProgress({ label: `rotating ${tenant}`, total: 0 });
    try {
      const result = await keyring.rotateTenantKey(tenant, {
        onProgress: ({ done, total }) => progress.update(done, total),
      });
      progress.finish(
        `tenant ${tenant}: key v${result.from} → v${result.to}, ${result.rewrapped} data keys re-wrapped`,
      );
      if (options.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      if (result.unreadable.length > 0) {
        process.stderr.write(
          `warning: ${result.unreadable.length} records could not be opened and were left as they were\n`,
        );
      }
    } finally {
      await store.close();
    }
  });

  addStoreOptions(
    operator
      .command('rotate-root')
      .description('Make a new root key active and re-wrap every tenant key under it (resumable)')
      .requiredOption('--new-root-key-file <file>', 'the new root key (32 bytes, mode 0600)')
      .option('--json', 'print the result as JSON'),
  ).action(async (options: Record<string, unknown>) => {
    const { store, keyring } = await open(options);
    const newRoot = await rootKeyFromFile(String(options.newRootKeyFile)).catch(
      exitOnStartupError('vault operator'),
    );
    const progress = createProgress({ label: 'rotating root key', total: 0 });
    try {
      const result = await keyring.rotateRootKey(newRoot, {
        onProgress: ({ done, total }) => progress.update(done, total),
      });
      progress.finish(`root key ${result.from} → ${result.to}: ${result.rewrapped} tenant keys re-wrapped`);
      if (options.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      process.stderr.write(
        'Restart servers with --root-key-file set to the new key; keep the old key until every replica runs the new one.\n',
      );
    } finally {
      await store.close();
    }
  });

  addStoreOptions(
    operator.command('key-status').description('Show root and tenant key versions and rotations'),
  ).action(async (options: Record<string, unknown>) => {
    const { store, keyring } = await open(options);
    try {
      process.stdout.write(`${JSON.stringify(await keyring.status(), null, 2)}\n`);
    } finally {
      await store.close();
    }
  });
}
