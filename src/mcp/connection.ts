/**
 * Connection settings for the CLI and the MCP server, from the environment: `VAULT_ADDR`,
 * `VAULT_TENANT`, and the token from `VAULT_TOKEN`, else the file named by `VAULT_TOKEN_FILE`
 * (how `vault mcp init` keeps the agent token out of argv and out of the project), else the
 * token `vault login` stored. Explicit options win over all of these.
 */
import { readFileSync } from 'node:fs';
import type { ConnectOptions } from '../sdk/index.js';

export interface ConnectionSources {
  env: Record<string, string | undefined>;
  /** The file `vault login` writes (CLI only). */
  storedTokenFile?: string;
  /** Settings `vault login` stored next to it (non-secret). */
  stored?: { addr?: string; tenant?: string };
  explicit?: { addr?: string; tenant?: string };
}

export type TokenSource = 'VAULT_TOKEN' | 'VAULT_TOKEN_FILE' | 'login' | 'none';

export function connectionFrom(sources: ConnectionSources): ConnectOptions & { tokenSource: TokenSource } {
  const { env } = sources;
  const first = (...values: (string | undefined)[]) => values.find((v) => v !== undefined && v !== '');
  const addr = first(sources.explicit?.addr, env.VAULT_ADDR, sources.stored?.addr);
  const tenant = first(sources.explicit?.tenant, env.VAULT_TENANT, sources.stored?.tenant);
  let token: string | undefined;
  let tokenSource: TokenSource = 'none';
  if (env.VAULT_TOKEN) {
    token = env.VAULT_TOKEN;
    tokenSource = 'VAULT_TOKEN';
  } else if (env.VAULT_TOKEN_FILE) {
    token = readTokenFile(env.VAULT_TOKEN_FILE, 'VAULT_TOKEN_FILE');
    tokenSource = 'VAULT_TOKEN_FILE';
  } else if (sources.storedTokenFile) {
    token = readTokenFile(sources.storedTokenFile, undefined);
    if (token) tokenSource = 'login';
  }
  return {
    ...(addr !== undefined && { addr }),
    ...(tenant !== undefined && { tenant }),
    ...(token !== undefined && { token }),
    tokenSource,
  };
}

function readTokenFile(path: string, variable: string | undefined): string | undefined {
  try {
    const token = readFileSync(path, 'utf8').trim();
    return token === '' ? undefined : token;
  } catch (err) {
    if (variable === undefined && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(
      `cannot read the token file ${path}${variable ? ` (from ${variable})` : ''}: ${(err as Error).message}; ` +
        'run `vault mcp init` (agents) or `vault login` again',
    );
  }
}
