/**
 * `vault dev`: a local server on an embedded store that prints `export` lines for a shell.
 * `--export-file` also writes them to a file, atomically and only once the server answers, and
 * removes it when the server stops, so a script can wait for the file instead of sleeping;
 * `--detach` does the waiting: it returns once the file is written (see ./dev-detach.ts).
 * (Not `--env-file`: Node 20 reads any `--env-file X` in argv, even after the script, as its
 * own option and exits 9 when X does not exist yet.)
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { ROOT_POLICY, systemContext } from '../core/index.js';
import { generateRootKeyFile } from '../crypto/root-key.js';
import { writePrivateFile } from '../lib/config-dir.js';
import { createLogger } from '../lib/logger.js';
import { startVault } from '../server/vault-process.js';
import { detach, detachedEnv } from './dev-detach.js';
import { configOrExit, exitOnStartupError, onShutdown } from './server.js';

const DEV_TOKEN_TTL_MS = 30 * 24 * 3_600_000;

export function register(program: Command): void {
  program
    .command('dev')
    .description('Run Vault for development on an embedded store; prints export lines for your shell')
    .option('--data-dir <dir>', 'where the store, root key and audit log live', '.vault-dev')
    .option('--port <n>', 'port on 127.0.0.1 (0 picks a free one; default $VAULT_DEV_PORT, else 8200)')
    .option('--tenant <id>', 'the tenant to create and print as VAULT_TENANT', 'dev')
    .option('--log-level <level>', 'log level of the server log on stderr', 'warn')
    .option('--no-ui', 'do not serve the web console at /ui')
    .option(
      '--export-file <path>',
      'also write the export lines (and VAULT_DEV_PID) to this file, mode 0600, once the server is ready; removed when it stops',
    )
    // The name users guess first. Node 20 reads `--env-file` itself wherever it appears and
    // exits if the file is missing, so it is hidden; Node 22 passes it through.
    .addOption(new Option('--env-file <path>', 'the same as --export-file').hideHelp())
    .option(
      '--detach',
      'run in the background and return once the server is ready (needs --export-file; stop it with kill "$VAULT_DEV_PID")',
    )
    .action(
      async (options: {
        dataDir: string;
        port?: string;
        tenant: string;
        logLevel: string;
        ui: boolean;
        exportFile?: string;
        envFile?: string;
        detach?: boolean;
      }) => {
        const exportFile = options.exportFile ?? options.envFile;
        const envFile = exportFile === undefined ? undefined : resolve(exportFile);
        if (options.detach) {
          if (!envFile) {
            process.stderr.write(
              'vault dev: --detach needs --export-file PATH (where the export lines go)\n',
            );
            process.exit(2);
          }
          process.exitCode = await detach({ envFile, dataDir: resolve(options.dataDir) });
          return;
        }
        // A file left by an earlier run must not look like this server being ready.
        if (envFile) await rm(envFile, { force: true });
        const dataDir = resolve(options.dataDir);
        await mkdir(dataDir, { recursive: true, mode: 0o700 });
        await chmod(dataDir, 0o700);
        const rootKeyFile = resolve(dataDir, 'root.key');
        const createdKey = !existsSync(rootKeyFile);
        if (createdKey) await generateRootKeyFile(rootKeyFile);
        const portText = options.port ?? (process.env.VAULT_DEV_PORT || '8200');
        const port = Number(portText);
        if (!Number.isInteger(port) || port < 0 || port > 65_535) {
          process.stderr.write(`vault dev: --port must be a number from 0 to 65535, not "${portText}"\n`);
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
        onShutdown(async () => {
          if (envFile) await removeIfOurs(envFile);
          await vault.close();
        });
        if (process.env[detachedEnv] !== '1') stopWithParent();

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
            'you keep elsewhere.',
            envFile
              ? `Wrote the export lines to ${envFile}: load them with \`. ${envFile}\`.`
              : 'Paste the export lines below into another shell, or run `vault dev --export-file vault.env --detach && . ./vault.env`.',
            '',
          ].join('\n'),
        );
        const lines = `export VAULT_ADDR=${vault.url}\nexport VAULT_TOKEN=${token}\nexport VAULT_TENANT=${options.tenant}\n`;
        if (envFile) writePrivateFile(envFile, `${lines}export VAULT_DEV_PID=${process.pid}\n`);
        process.stdout.write(lines);
      },
    );
}

/** Removes the env file unless another `vault dev` has written its own there since. */
async function removeIfOurs(path: string): Promise<void> {
  const text = await readFile(path, 'utf8').catch(() => '');
  if (text.includes(`export VAULT_DEV_PID=${process.pid}\n`)) await rm(path, { force: true });
}

/**
 * A foreground `vault dev` belongs to whoever started it: when that process is gone (`npm run
 * dev` killed, a terminal closed) it shuts down as on SIGTERM instead of serving on as an
 * orphan. `--detach` is the way to keep one running.
 */
function stopWithParent(): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    process.kill(process.pid, 'SIGTERM');
  }, 500);
  timer.unref();
}
