import { readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { systemClock } from '../lib/clock.js';
import { type ConnectOptions, type TokenInfo, Vault } from '../sdk/index.js';
import { brokerSettingsFrom } from './broker-tool.js';
import { createVaultMcpServer } from './server.js';
import { requireAgentToken, requireBrokerToken, ServingIdentityError } from './serving-identity.js';
import type { ToolDeps, ToolLimits } from './tools.js';

/**
 * Connects on first use and again after a failure, so a bad token is reported per tool call.
 * `check` refuses unfit tokens every time: by default the token must be an agent's (a
 * person's, a system or a root token is refused).
 */
export function lazyVault(
  options: ConnectOptions & { token: string },
  check: (self: TokenInfo) => void = (self) => requireAgentToken(self, 'the Vault MCP server'),
): () => Promise<Vault> {
  let pending: Promise<Vault> | undefined;
  return () => {
    pending ??= Vault.connect(options)
      .then((vault) => {
        check(vault.self);
        return vault;
      })
      .catch((err: unknown) => {
        pending = undefined;
        throw err;
      });
    return pending;
  };
}

/** Serves one agent over stdio (how Claude Code runs MCP servers) until stdin closes. */
export async function serveStdio(options: {
  connect: ConnectOptions & { token: string };
  env: Record<string, string | undefined>;
  cwd: string;
  limits?: ToolLimits;
  runCommands?: ToolDeps['runCommands'];
  stdin?: Readable;
  stdout?: Writable;
}): Promise<void> {
  // The broker's settings (its token file above all) are for this process: commands never see them.
  const broker = brokerSettingsFrom(options.env, (path) => readFileSync(path, 'utf8'));
  const env = Object.fromEntries(
    Object.entries(options.env).filter(([key]) => !key.startsWith('VAULT_BROKER_')),
  );
  const vault = lazyVault(options.connect);
  // The broker leases for the agent with its own identity, never the agent's own token.
  const brokerVault =
    broker &&
    lazyVault({ ...options.connect, token: broker.token }, (self) =>
      requireBrokerToken(self, 'the credential broker (VAULT_BROKER_TOKEN_FILE)'),
    );
  const server = createVaultMcpServer({
    vault,
    token: options.connect.token,
    ...(broker && { otherTokens: [{ name: 'VAULT_BROKER_TOKEN', value: broker.token }] }),
    env,
    ...(broker &&
      brokerVault && {
        broker: {
          brokerVault,
          allowOtherHosts: broker.allowOtherHosts,
          ...(broker.upstreamCa && { upstreamCa: broker.upstreamCa }),
          clock: systemClock,
        },
      }),
    cwd: options.cwd,
    ...(options.limits && { limits: options.limits }),
    ...(options.runCommands !== undefined && { runCommands: options.runCommands }),
  });
  // Refuse a person's, a system or a root token (and an agent's as the broker's) before serving
  // anything; a server that cannot be reached yet is not a reason to stop (each call reports it).
  for (const connected of brokerVault ? [vault, brokerVault] : [vault]) {
    await connected().catch((err: unknown) => {
      if (err instanceof ServingIdentityError) throw err;
    });
  }
  const stdin = options.stdin ?? process.stdin;
  const transport = new StdioServerTransport(stdin, options.stdout ?? process.stdout);
  // The SDK's transport does not notice the end of stdin; Claude Code closes it to stop us.
  const closed = new Promise<void>((resolve) => {
    transport.onclose = resolve;
    stdin.once('end', resolve);
    stdin.once('close', resolve);
  });
  await server.connect(transport);
  await closed;
  await server.close();
}
