import { readFileSync } from 'node:fs';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { systemClock } from '../lib/clock.js';
import { type ConnectOptions, Vault } from '../sdk/index.js';
import { brokerSettingsFrom } from './broker-tool.js';
import { createVaultMcpServer } from './server.js';
import type { ToolLimits } from './tools.js';

/** Connects on first use and again after a failure, so a bad token is reported per tool call. */
export function lazyVault(options: ConnectOptions): () => Promise<Vault> {
  let pending: Promise<Vault> | undefined;
  return () => {
    pending ??= Vault.connect(options).catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}

/** Serves one agent over stdio (how Claude Code runs MCP servers) until stdin closes. */
export async function serveStdio(options: {
  connect: ConnectOptions;
  env: Record<string, string | undefined>;
  cwd: string;
  limits?: ToolLimits;
}): Promise<void> {
  // The broker's settings (its token file above all) are for this process: commands never see them.
  const broker = brokerSettingsFrom(options.env, (path) => readFileSync(path, 'utf8'));
  const env = Object.fromEntries(
    Object.entries(options.env).filter(([key]) => !key.startsWith('VAULT_BROKER_')),
  );
  const server = createVaultMcpServer({
    vault: lazyVault(options.connect),
    token: options.connect.token ?? '',
    env,
    ...(broker && {
      broker: {
        brokerVault: lazyVault({ ...options.connect, token: broker.token }),
        allowOtherHosts: broker.allowOtherHosts,
        ...(broker.upstreamCa && { upstreamCa: broker.upstreamCa }),
        clock: systemClock,
      },
    }),
    cwd: options.cwd,
    ...(options.limits && { limits: options.limits }),
  });
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    transport.onclose = resolve;
  });
  await server.connect(transport);
  await closed;
}
