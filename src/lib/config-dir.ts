/**
 * Where the CLI and the MCP server keep per-user state (the login token, agent tokens minted
 * by `vault mcp init`): `$XDG_CONFIG_HOME/ghoststack-vault`, else `~/.config/ghoststack-vault`.
 * Never inside a project, so nothing secret can be committed by accident.
 */
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export function configDir(env: Record<string, string | undefined>, home: string = homedir()): string {
  const base =
    env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : join(home, '.config');
  return join(base, 'ghoststack-vault');
}

/** Writes a file readable only by its owner (0600, directory 0700), atomically. */
export function writePrivateFile(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, content, { mode: 0o600 });
  chmodSync(temp, 0o600);
  renameSync(temp, path);
}
