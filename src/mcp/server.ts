import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { type BrokerToolDeps, registerBrokerTool } from './broker-tool.js';
import { registerVaultTools, type ToolDeps } from './tools.js';

export const mcpServerName = 'ghoststack-vault';
export const mcpServerVersion = '0.1.0';

const instructions =
  'Vault holds credentials (API keys, passwords, database URLs). You get them as short, audited leases. ' +
  'To use a credential, call run_with_credentials: it injects values as environment variables and scrubs ' +
  'them from the output, so you never see them. Revoke leases you no longer need.';

/** An MCP server exposing Vault to one agent identity (the token in `deps`). */
export function createVaultMcpServer(
  deps: ToolDeps & {
    broker?: Pick<BrokerToolDeps, 'brokerVault' | 'allowOtherHosts' | 'upstreamCa' | 'clock'>;
  },
): McpServer {
  const server = new McpServer({ name: mcpServerName, version: mcpServerVersion }, { instructions });
  registerVaultTools(server, deps);
  if (deps.broker) registerBrokerTool(server, { ...deps, ...deps.broker });
  return server;
}
