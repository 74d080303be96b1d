/**
 * What every command that talks to the server shares: the `--addr`, `--tenant` and `--json`
 * options, and a connection resolved once from flags, the environment and `vault login`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { configDir } from '../lib/config-dir.js';
import { connectionFrom } from '../mcp/connection.js';
import { Vault } from '../sdk/index.js';
import { UsageError } from './exit-codes.js';

export interface CommonOptions {
  addr?: string;
  tenant?: string;
  json?: boolean;
}

/** Adds the connection and output options to a command. */
export function withCommon(command: Command): Command {
  return command
    .option('--addr <url>', 'server address (default $VAULT_ADDR, else http://127.0.0.1:8200)')
    .option('--tenant <id>', "tenant to address (default $VAULT_TENANT, else the token's)")
    .option('--json', 'print JSON for scripts instead of tables');
}

export const loginPaths = (env: Record<string, string | undefined> = process.env) => {
  const dir = configDir(env);
  return { tokenFile: join(dir, 'token'), settingsFile: join(dir, 'login.json') };
};

function storedSettings(file: string): { addr?: string; tenant?: string } {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as { addr?: string; tenant?: string };
  } catch {
    return {};
  }
}

export function connectOptions(
  options: CommonOptions,
  token: { ambientToken?: boolean; tokenFile?: string } = {},
) {
  const paths = loginPaths();
  return connectionFrom({
    env: process.env,
    storedTokenFile: paths.tokenFile,
    stored: storedSettings(paths.settingsFile),
    explicit: {
      ...(options.addr !== undefined && { addr: options.addr }),
      ...(options.tenant !== undefined && { tenant: options.tenant }),
      ...(token.tokenFile !== undefined && { tokenFile: token.tokenFile }),
    },
    ...(token.ambientToken !== undefined && { ambientToken: token.ambientToken }),
  });
}

export async function connect(options: CommonOptions): Promise<Vault> {
  return Vault.connect(connectOptions(options));
}

/** `agent:claude-code` → `{ type: 'agent', name: 'claude-code' }`. */
export function parseIdentity(text: string, flag: string) {
  const match = /^(human|agent|workload):(.+)$/.exec(text);
  if (!match)
    throw new UsageError(
      `${flag} must look like "agent:claude-code" (type human, agent or workload), not "${text}"`,
    );
  return { type: match[1] as 'human' | 'agent' | 'workload', name: match[2]! };
}

/** Repeatable `--label key=value` into a record. */
export function parseLabels(
  pairs: string[] | undefined,
  flag = '--label',
): Record<string, string> | undefined {
  if (!pairs || pairs.length === 0) return undefined;
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`${flag} must look like key=value, not "${pair}"`);
    labels[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return labels;
}

export const collect = (value: string, previous: string[] = []) => [...previous, value];

export function positiveInt(value: string, flag: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0)
    throw new UsageError(`${flag} must be a positive whole number, not "${value}"`);
  return parsed;
}
