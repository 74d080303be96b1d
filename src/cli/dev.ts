import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ROOT_POLICY, systemContext } from '../core/index.js';
import { generateRootKeyFile } from '../crypto/root-key.js';
import { createLogger } from '../lib/logger.js';
import { startVault } from '../server/vault-process.js';
import { configOrExit, exitOnStartupError, onShutdown } from './server.js';

const DEV_TOKEN_TTL_MS = 30 * 24 * 3_600_000;

export function register(program: Command): void {
  program
    .command('dev')
    .description('Run Vault for development on an embedded store; prints export lines for your shell')
    .option('--data-dir <dir>', 'where the store, root key and audit log live', '.vault-dev')
    .option('--port <n>', 'port on 127.0.0.1 (0 picks a free one)', '8200')
    .option('--tenant <id>', 'the tenant to create and print as VAULT_TENANT', 'dev')
    .option('--log-level <level>', 'log level of the server log on stderr', 'warn')
    .option('--no-ui', 'do not serve the web console at /ui')
    .action(
      async (options: { dataDir: string; port: string; tenant: string; logLevel: string; ui: boolean }) => {
        const dataDir = resolve(options.dataDir);
        await mkdir(dataDir, { recursive: true, mode: 0o700 });
        await chmod(dataDir, 0o700);
        const rootKeyFile = resolve(dataDir, 'root.key');
        const createdKey = !existsSync(rootKeyFile);
        if (createdKey) await generateRootKeyFile(rootKeyFile);
        const port = Number(options.port);
        if (!Number.isInteger(port) || port < 0 || port > 65_535) {
          process.stderr.write(`vault dev: --port must be a number from 0 to 65535, not "${options.port}"\n`);
          process.exit(2);
        }
        const config = configOrExit({
          store: 'embedded',
          dataDir: resolve(dataDir, 'store'),
          rootKeyFile,
          listen: `127.0.0.1:${port}`,
          auditLog: resolve(dataDir, 'audit.log'),
          logLevel: options.logLevel,
          autoCreateTenants: true,
          ui: options.ui,
        });
        const logger = createLogger({
          level: config.logLevel,
          name: 'vault-dev',
          destination: process.stderr,
        });
        const vault = await startVault(config, logger).catch(exitOnStartupError('vault dev'));
        onShutdown(() => vault.close());

        const identity = { type: 'human' as const, name: 'dev-root' };
        await vault.core.tenants.ensure(options.tenant, systemContext(options.tenant, identity));
        const tokenFile = resolve(dataDir, 'dev-token');
        let token = existsSync(tokenFile) ? (await readFile(tokenFile, 'utf8')).trim() : '';
        const valid = token
          ? await vault.core.tokens.authenticate(token).then(
              () => true,
              () => false,
            )
          : false;
        if (!valid) {
          const minted = await vault.core.tokens.mint(
            systemContext(options.tenant, identity),
            options.tenant,
            {
              identity,
              policies: [ROOT_POLICY],
              ttlMs: DEV_TOKEN_TTL_MS,
              system: true,
              displayName: 'vault dev root token',
            },
          );
          token = minted.token;
          await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
        }
        process.stderr.write(
          [
            `Vault dev server listening on ${vault.url} (embedded store in ${config.dataDir}).`,
            ...(config.ui ? [`Web console: ${vault.url}/ui (log in with the VAULT_TOKEN below).`] : []),
            `${createdKey ? 'Created the' : 'Using the'} root key at ${rootKeyFile}.`,
            'Dev mode keeps the root key on disk beside the data it protects and prints a root token:',
            'never use it for real secrets. For production run `vault server` with etcd and a root key',
            'you keep elsewhere. Paste the export lines below into another shell, or run',
            '`vault dev > vault.env & sleep 5; . ./vault.env` to load them.',
            '',
          ].join('\n'),
        );
        process.stdout.write(
          `export VAULT_ADDR=${vault.url}\nexport VAULT_TOKEN=${token}\nexport VAULT_TENANT=${options.tenant}\n`,
        );
      },
    );
}
