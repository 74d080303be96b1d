/**
 * What Claude Code does after `npx @ghoststack/vault-mcp init`: reads `.mcp.json` in the
 * project, starts the `vault` server it names over stdio with the user's environment plus the
 * entry's `env`, and calls the tools the guide names. A real MCP client (the official SDK's
 * `Client`), timed call by call, ending with the leased value reaching a command.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

export interface AgentStep {
  text: string;
  ms: number;
}

interface McpEntry {
  command: string;
  args: string[];
  env?: Record<string, string>;
}

type ToolResult = { content: { type: string; text: string }[]; isError?: boolean };

/** Leases `credential` as the agent and runs a command with it; returns the timed calls. */
export async function agentTakesLease(
  project: string,
  userEnv: Record<string, string>,
  credential: string,
  expectedValue: string,
): Promise<AgentStep[]> {
  const steps: AgentStep[] = [];
  const timed = async <T>(text: string, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const result = await work();
    steps.push({ text, ms: performance.now() - started });
    return result;
  };
  const entry = (
    JSON.parse(readFileSync(join(project, '.mcp.json'), 'utf8')) as {
      mcpServers: Record<string, McpEntry>;
    }
  ).mcpServers.vault;
  if (!entry) throw new Error(`${project}/.mcp.json has no "vault" server`);
  const client = new Client({ name: 'claude-code', version: '1' });
  let stderr = '';
  const transport = new StdioClientTransport({
    command: entry.command,
    args: entry.args,
    env: { ...userEnv, ...entry.env },
    cwd: project,
    stderr: 'pipe',
  });
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4_000);
  });
  const call = async (name: string, args: Record<string, unknown>) => {
    const result = (await client.callTool({ name, arguments: args })) as ToolResult;
    const text = result.content.map((part) => part.text).join('\n');
    if (result.isError) throw new Error(`${name} failed: ${text}`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  try {
    await timed(`start the server (${[entry.command, ...entry.args].join(' ')}) and connect`, () =>
      client.connect(transport),
    );
    const tools = await timed('tools/list', () => client.listTools());
    if (!tools.tools.some((tool) => tool.name === 'request_lease'))
      throw new Error(`the server offers no request_lease: ${tools.tools.map((t) => t.name).join(', ')}`);
    const listed = await timed('list_credentials', () => call('list_credentials', {}));
    const names = (listed.credentials as { name: string }[]).map((c) => c.name);
    if (!names.includes(credential)) throw new Error(`list_credentials shows no ${credential}: ${names}`);
    const lease = await timed(`request_lease {credential: "${credential}"}`, () =>
      call('request_lease', { credential, ttl: '15m' }),
    );
    // The value reaches a command, which prints only its length.
    const ran = await timed('run_with_credentials {leaseId} (the value reaches a command)', () =>
      call('run_with_credentials', {
        command: 'printf %s "$LEASED" | wc -c',
        credentials: [{ leaseId: lease.leaseId, env: 'LEASED' }],
      }),
    );
    const length = Number(String(ran.stdout).trim());
    if (length !== expectedValue.length)
      throw new Error(`the command saw a value of ${length} characters, not ${expectedValue.length}`);
    return steps;
  } catch (err) {
    throw new Error(`${(err as Error).message}\nthe MCP server's stderr ends:\n${stderr}`);
  } finally {
    await client.close();
  }
}
