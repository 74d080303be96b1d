/**
 * `vault mcp init`: sets a project up for Claude Code. Mints a short-lived token for the agent
 * identity, keeps it in a 0600 file under the user's config directory (never in the project,
 * never in argv), and writes or merges `.mcp.json` so Claude Code starts the MCP server with
 * `VAULT_TOKEN_FILE` pointing at it. Running it again replaces (and revokes) the old token.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { writePrivateFile } from '../lib/config-dir.js';
import type { TokenInfo, Vault } from '../sdk/index.js';

export interface InitOptions {
  /** A connection allowed to mint tokens for the agent (the user's own). */
  vault: Vault;
  projectDir: string;
  /** From configDir(): `~/.config/ghoststack-vault`. */
  configDir: string;
  /** The agent identity's name (default `claude-code`). */
  agentName?: string;
  /** Token lifetime (default `8h`: a working day). */
  ttl?: string;
  /** Policies for the token (on top of the agent identity's own). */
  policies?: string[];
  /** How Claude Code starts the server (default `npx -y @ghoststack/vault-mcp`). */
  command?: { command: string; args: string[] };
  /** The entry name under mcpServers (default `vault`). */
  serverName?: string;
  /** A CA file (PEM) the server must trust for an https Vault (`VAULT_CACERT`), passed on. */
  caCertFile?: string;
}

export interface InitResult {
  mcpJsonPath: string;
  /** True when .mcp.json existed and was merged. */
  merged: boolean;
  tokenFile: string;
  token: TokenInfo;
  /** The accessor of the token this one replaced (revoked), if any. */
  replacedAccessor?: string;
  serverName: string;
  /** How Claude Code will start the server. */
  command: { command: string; args: string[] };
}

export const defaultServerCommand = { command: 'npx', args: ['-y', '@ghoststack/vault-mcp'] };

/** A stable, non-reversible id for a project directory. */
export function projectKey(projectDir: string): string {
  return createHash('sha256').update(realpathSync(projectDir)).digest('hex').slice(0, 16);
}

export function agentTokenPaths(configDir: string, projectDir: string) {
  const key = projectKey(projectDir);
  return {
    tokenFile: join(configDir, 'agents', `${key}.token`),
    infoFile: join(configDir, 'agents', `${key}.json`),
  };
}

function readMcpJson(path: string): Record<string, unknown> | undefined {
  if (!existsSync(path)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(
      `${path} is not valid JSON (${(err as Error).message}); fix or remove it, then run init again`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${path} is not a JSON object; fix or remove it, then run init again`);
  }
  return parsed as Record<string, unknown>;
}

export async function initProject(options: InitOptions): Promise<InitResult> {
  const serverName = options.serverName ?? 'vault';
  const mcpJsonPath = join(options.projectDir, '.mcp.json');
  const existing = readMcpJson(mcpJsonPath);
  const { tokenFile, infoFile } = agentTokenPaths(options.configDir, options.projectDir);

  let previous: string | undefined;
  try {
    previous = (JSON.parse(readFileSync(infoFile, 'utf8')) as { accessor?: string }).accessor;
  } catch {
    previous = undefined;
  }

  const created = await options.vault.tokens.create({
    identity: { type: 'agent', name: options.agentName ?? 'claude-code' },
    policies: options.policies ?? [],
    ttl: options.ttl ?? '8h',
    displayName: `claude-code in ${basename(options.projectDir)}`,
  });
  const { token, ...info } = created;
  writePrivateFile(tokenFile, `${token}\n`);
  writePrivateFile(
    infoFile,
    `${JSON.stringify({ accessor: info.accessor, expiresAt: info.expiresAt, projectDir: options.projectDir }, null, 2)}\n`,
  );

  let replacedAccessor: string | undefined;
  if (previous && previous !== info.accessor) {
    await options.vault.tokens.revoke(previous).then(
      () => {
        replacedAccessor = previous;
      },
      () => undefined, // already expired or revoked
    );
  }

  const command = options.command ?? defaultServerCommand;
  const servers =
    existing && typeof existing.mcpServers === 'object' && existing.mcpServers !== null
      ? (existing.mcpServers as Record<string, unknown>)
      : {};
  const config = {
    ...existing,
    mcpServers: {
      ...servers,
      [serverName]: {
        command: command.command,
        args: command.args,
        env: {
          VAULT_ADDR: options.vault.addr,
          VAULT_TENANT: options.vault.tenant,
          VAULT_TOKEN_FILE: tokenFile,
          ...(options.caCertFile && { VAULT_CACERT: options.caCertFile }),
        },
      },
    },
  };
  const temp = `${mcpJsonPath}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(config, null, 2)}\n`);
  renameSync(temp, mcpJsonPath);

  return {
    mcpJsonPath,
    merged: existing !== undefined,
    tokenFile,
    token: info,
    ...(replacedAccessor && { replacedAccessor }),
    serverName,
    command,
  };
}

/** What init did, for people. */
export function describeInit(result: InitResult): string {
  const lines = [
    `${result.merged ? 'Updated' : 'Wrote'} ${result.mcpJsonPath} (server "${result.serverName}").`,
    `Minted a token for agent "${result.token.identity.name}" in tenant "${result.token.tenant}", ` +
      `expiring ${result.token.expiresAt.toISOString()} (accessor ${result.token.accessor}).`,
    `Stored it in ${result.tokenFile} (mode 0600, outside the project; .mcp.json only names the file).`,
  ];
  lines.push(
    `Claude Code starts the server with: ${[result.command.command, ...result.command.args].join(' ')}`,
  );
  if (result.replacedAccessor)
    lines.push(`Revoked the token it replaces (accessor ${result.replacedAccessor}).`);
  if (result.token.policies.length === 0) {
    lines.push(
      'The token has no policies yet: grant the agent identity a policy (`vault policies put ...` and ' +
        '`vault identities put agent claude-code --policy NAME`) or run init with --policy NAME.',
    );
  } else {
    lines.push(`Policies: ${result.token.policies.join(', ')}.`);
  }
  lines.push(
    'Restart Claude Code in this project (or run /mcp) to pick the server up; run init again when the token expires.',
  );
  return lines.join('\n');
}
