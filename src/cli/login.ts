/**
 * `vault login`, `vault logout`, `vault whoami`. The token is validated, then kept in
 * `~/.config/ghoststack-vault/token` (0600) with the address and tenant beside it
 * (`login.json`), or printed as export lines with `--print`.
 */
import { rmSync } from 'node:fs';
import type { Command } from 'commander';
import { writePrivateFile } from '../lib/config-dir.js';
import { resolveConnectOptions, Vault } from '../sdk/index.js';
import { type CommonOptions, connect, loginPaths, withCommon } from './context.js';
import { UsageError } from './exit-codes.js';
import { printJson } from './output.js';
import { promptHidden } from './secret-input.js';
import { showToken, tokenJson } from './tokens.js';

const shellQuote = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;

async function readToken(fromStdin: boolean | undefined): Promise<string> {
  if (fromStdin) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8').trim();
  }
  if (!process.stdin.isTTY)
    throw new UsageError('pipe the token with --token-stdin (tokens are never taken from the command line)');
  return (await promptHidden('Token (input hidden): ')).trim();
}

export function register(program: Command): void {
  program
    .command('login')
    .description('Validate a token and store it for later commands (or print export lines with --print)')
    .option('--token-stdin', 'read the token from stdin instead of a hidden prompt')
    .option('--print', 'print export lines for your shell instead of storing the token')
    .option('--addr <url>', 'server address (default $VAULT_ADDR, else http://127.0.0.1:8200)')
    .option('--tenant <id>', "tenant (default $VAULT_TENANT, else the token's)")
    .action(async (options: CommonOptions & { tokenStdin?: boolean; print?: boolean }) => {
      const token = await readToken(options.tokenStdin);
      if (!token) throw new UsageError('the token is empty');
      const resolved = resolveConnectOptions({
        token,
        ...(options.addr && { addr: options.addr }),
        ...(options.tenant && { tenant: options.tenant }),
      });
      const vault = await Vault.connect(resolved);
      const who = `${vault.self.identity.type}:${vault.self.identity.name}`;
      if (options.print) {
        process.stdout.write(
          `export VAULT_ADDR=${shellQuote(vault.addr)}\nexport VAULT_TOKEN=${shellQuote(token)}\nexport VAULT_TENANT=${shellQuote(vault.tenant)}\n`,
        );
        process.stderr.write(`Token valid for ${who} in tenant ${vault.tenant}.\n`);
        return;
      }
      const paths = loginPaths();
      writePrivateFile(paths.tokenFile, `${token}\n`);
      writePrivateFile(
        paths.settingsFile,
        `${JSON.stringify({ addr: vault.addr, tenant: vault.tenant }, null, 2)}\n`,
      );
      process.stdout.write(
        `Logged in as ${who} in tenant ${vault.tenant} at ${vault.addr}; token stored in ${paths.tokenFile} (mode 0600).\n` +
          'VAULT_TOKEN, when set, still takes precedence.\n',
      );
    });

  program
    .command('logout')
    .description('Forget the stored token (it stays valid until it expires or is revoked)')
    .action(() => {
      const paths = loginPaths();
      rmSync(paths.tokenFile, { force: true });
      rmSync(paths.settingsFile, { force: true });
      process.stdout.write(`Removed ${paths.tokenFile}.\n`);
    });

  withCommon(program.command('whoami').description('Who the current token authenticates')).action(
    async (options: CommonOptions) => {
      const vault = await connect(options);
      if (options.json) return printJson(tokenJson(vault.self));
      showToken(vault.self);
    },
  );
}
