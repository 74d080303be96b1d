/**
 * The MCP tools reference, from the tools the MCP server registers, listed by a real MCP
 * client over an in-memory transport (so the argument schemas are the ones an agent gets).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { systemClock } from '../../../src/lib/clock.js';
import { createVaultMcpServer } from '../../../src/mcp/server.js';
import { code, fieldTable, generatedNotice, text } from '../markdown.js';
import { flatten, type JsonSchema } from '../schema-fields.js';

/** Never called: listing tools does not connect to Vault. */
const noVault = () => Promise.reject(new Error('listing tools needs no Vault'));

export async function listTools() {
  const server = createVaultMcpServer({
    vault: noVault,
    token: 'unused',
    env: {},
    broker: { brokerVault: noVault, allowOtherHosts: false, clock: systemClock },
  });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: 'docs-reference', version: '0' });
  await server.connect(serverSide);
  await client.connect(clientSide);
  try {
    return (await client.listTools()).tools;
  } finally {
    await client.close();
    await server.close();
  }
}

const hints = (annotations: Record<string, unknown> | undefined) =>
  [
    annotations?.readOnlyHint ? 'read-only' : '',
    annotations?.destructiveHint ? 'destructive' : '',
    annotations?.idempotentHint ? 'idempotent' : '',
  ].filter(Boolean);

export async function mcpToolsPage(): Promise<string> {
  const tools = await listTools();
  const sections = tools.map((tool) => {
    const rows = flatten(tool.inputSchema as JsonSchema);
    const marks = hints(tool.annotations as Record<string, unknown> | undefined);
    return [
      `## ${code(tool.name)}`,
      '',
      `**${text(tool.title ?? tool.name)}.** ${text(tool.description ?? '')}`,
      ...(marks.length ? ['', `Hints to the client: ${marks.join(', ')}.`] : []),
      '',
      rows.length ? fieldTable(rows, 'argument') : 'No arguments.',
    ].join('\n');
  });
  return [
    generatedNotice('the tools the MCP server registers (src/mcp/tools.ts, src/mcp/broker-tool.ts)'),
    '',
    '# MCP tools reference',
    '',
    'The tools `vault mcp serve` (and `npx @ghoststack/vault-mcp`) offers an agent, with the arguments their schemas accept, as an MCP client lists them. `run_with_broker` is offered when the server has a broker token; over Streamable HTTP, `run_with_credentials` only with `--allow-run-on-host`. Setup and the security model of each tool: [Claude Code](/guide/claude-code).',
    '',
    ...sections.flatMap((section) => [section, '']),
  ].join('\n');
}
