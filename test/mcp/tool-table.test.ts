/**
 * The tool table of docs/readme/mcp.md against the tools a real MCP client lists: every tool
 * is there, with exactly the arguments (and nested object fields) its input schema has, and
 * `?` exactly on the optional ones. Listing tools makes no call to Vault.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { describe, expect, it } from 'vitest';
import { createVaultMcpServer } from '../../src/mcp/server.js';
import { repoRoot } from '../support/vault-dev.js';

interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
}

/** `{a, b?, c: [{d, e?} | {f}]}`: the shape the table writes, from a JSON schema. */
function shape(schema: JsonSchema): string {
  if (schema.type === 'object' && schema.properties && Object.keys(schema.properties).length > 0) {
    const fields = Object.entries(schema.properties).map(([name, field]) => {
      const optional = schema.required?.includes(name) ? '' : '?';
      const inner = field.type === 'array' && field.items ? `: [${shape(field.items)}]` : '';
      return `${name}${optional}${inner}`;
    });
    return `{${fields.join(', ')}}`;
  }
  if (schema.anyOf) return schema.anyOf.map(shape).join(' | ');
  return '';
}

describe('docs/readme/mcp.md tool table', () => {
  it('lists every tool with the arguments of its input schema', async () => {
    const server = createVaultMcpServer({
      vault: () => Promise.reject(new Error('not used')),
      token: 'unused',
      env: {},
      broker: { brokerVault: () => Promise.reject(new Error('not used')) } as never,
    });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.connect(serverSide);
    const client = new Client({ name: 'table-check', version: '1' });
    await client.connect(clientSide);
    const tools = (await client.listTools()).tools;
    await client.close();

    const doc = readFileSync(join(repoRoot, 'docs/readme/mcp.md'), 'utf8');
    const documented = new Map(
      [...doc.matchAll(/^\| `(\w+)` \| `(\{.*?\})` \|/gm)].map((m) => [m[1]!, m[2]!.replaceAll('\\|', '|')]),
    );
    expect([...documented.keys()].sort()).toEqual(tools.map((t) => t.name).sort());
    for (const tool of tools) {
      expect(documented.get(tool.name), tool.name).toBe(shape(tool.inputSchema as JsonSchema));
    }
  });
});
