/**
 * Connection settings for the CLI and the MCP server, from the environment: `VAULT_ADDR`,
 * `VAULT_TENANT`, and the token from an explicit `--token-file`, else `VAULT_TOKEN`, else the
 * file named by `VAULT_TOKEN_FILE` (how `vault mcp init` keeps the agent token out of argv and
 * out of the project), else the token `vault login` stored. Explicit options win.
 *
 * Processes that act for an agent (`vault mcp serve`, `vault run`) pass `ambientToken: false`:
 * a `VAULT_TOKEN` they inherit is usually the person's (Claude Code passes its shell's
 * environment on), so it is used only when the user says so (`--token-from-env`).
 */
import { readFileSync } from 'node:fs';
import type { ConnectOptions } from '../sdk/index.js';

export interface ConnectionSources {
  env: Record<string, string | undefined>;
  /** The file `vault login` writes (CLI only). */
  storedTokenFile?: string;
  /** Settings `vault login` stored next to it (non-secret). */
  stored?: { addr?: string; tenant?: string };
  explicit?: { addr?: string; tenant?: string; tokenFile?: string };
  /** Take `VAULT_TOKEN` from the environment (default true). */
  ambientToken?: boolean;
}

export type TokenSource = 'token-file' | 'VAULT_TOKEN' | 'VAULT_TOKEN_FILE' | 'login' | 'none';

export interface Connection extends ConnectOptions {
  tokenSource: TokenSource;
  /** `VAULT_TOKEN` was set but not used (`ambientToken: false`). */
  ignoredAmbientToken: boolean;
}

export function connectionFrom(sources: ConnectionSources): Connection {
  const { env } = sources;
  const first = (...values: (string | undefined)[]) => values.find((v) => v !== undefined && v !== '');
  const addr = first(sources.explicit?.addr, env.VAULT_ADDR, sources.stored?.addr);
  const tenant = first(sources.explicit?.tenant, env.VAULT_TENANT, sources.stored?.tenant);
  const ambient = sources.ambientToken ?? true;
  let token: string | undefined;
  let tokenSource: TokenSource = 'none';
  if (sources.explicit?.tokenFile) {
    token = readTokenFile(sources.explicit.tokenFile, '--token-file');
    tokenSource = 'token-file';
  } else if (ambient && env.VAULT_TOKEN) {
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
    ignoredAmbientToken: !ambient && Boolean(env.VAULT_TOKEN),
  };
}

/** Says where a process acting for an agent looks for its token, and why not in VAULT_TOKEN. */
export function missingTokenMessage(command: string, connection: Connection): string {
  const ignored = connection.ignoredAmbientToken
    ? 'VAULT_TOKEN is set but not used: it is usually your own token, inherited; pass --token-from-env to use it anyway. '
    : '';
  return `${command}: no token. ${ignored}Give --token-file FILE or VAULT_TOKEN_FILE (run \`vault mcp init\` for an agent token), or \`vault login\``;
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
