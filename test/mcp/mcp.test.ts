/**
 * The MCP server through the real MCP client: over stdio (spawning `vault mcp serve` as Claude
 * Code would) and over Streamable HTTP, against a real `vault dev`. A planted secret must never
 * appear in any tool result, in any encoding, unless the agent's policy grants `reveal`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Vault } from '../../src/sdk/index.js';
import { repoRoot, startVaultDev, type VaultDev, vaultBin } from '../support/vault-dev.js';

const secret = 'sk_live_planted_7Hq2/x+Zr9=Kd&w';
const forms = [
  secret,
  Buffer.from(secret).toString('base64'),
  Buffer.from(secret).toString('base64url'),
  encodeURIComponent(secret),
  Buffer.from(secret).toString('base64').slice(4, 24),
];

type ToolResult = { isError?: boolean; content: { type: string; text?: string }[] };
const text = (result: ToolResult) => result.content.map((c) => c.text ?? '').join('\n');
const json = (result: ToolResult) => JSON.parse(text(result));

describe('vault MCP server', () => {
  let dev: VaultDev;
  let admin: Vault;
  let work: string;
  const tokens: Record<'agent' | 'revealer' | 'nobody', string> = { agent: '', revealer: '', nobody: '' };
  /** Every tool result an agent without reveal saw. */
  const seen: string[] = [];
  let stdio: Client;
  let httpServer: ChildProcess | undefined;
  let httpUrl: string;

  const call = async (client: Client, name: string, args: Record<string, unknown> = {}) => {
    const result = (await client.callTool({ name, arguments: args })) as ToolResult;
    seen.push(JSON.stringify(result));
    return result;
  };

  const httpClient = async (token: string | undefined) => {
    const client = new Client({ name: 'test', version: '1' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(httpUrl), {
        requestInit: { headers: token ? { authorization: `Bearer ${token}` } : {} },
      }),
    );
    return client;
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'vault-mcp-test-'));
    dev = await startVaultDev();
    admin = await Vault.connect({ addr: dev.addr, token: dev.token });
    await admin.credentials.create({ name: 'mcp-stripe', type: 'api-key', value: secret });
    await admin.credentials.create({ name: 'mcp-other', type: 'generic', value: 'other-value-1234567890' });
    await admin.credentials.create({ name: 'private-db', type: 'generic', value: 'not-for-agents-0987' });
    await admin.policies.put('mcp-agent', {
      rules: [{ credentials: ['mcp-*'], actions: ['list', 'read-metadata', 'lease'] }],
    });
    await admin.policies.put('mcp-reveal', {
      rules: [{ credentials: ['mcp-stripe'], actions: ['list', 'read-metadata', 'lease', 'reveal'] }],
    });
    const mint = async (name: string, policies: string[]) =>
      (await admin.tokens.create({ identity: { type: 'agent', name }, policies, ttl: '1h' })).token;
    tokens.agent = await mint('claude-code', ['mcp-agent']);
    tokens.revealer = await mint('revealer', ['mcp-reveal']);
    tokens.nobody = await mint('nobody', []);

    // As Claude Code runs it: the token in a file named by VAULT_TOKEN_FILE, not in argv or env;
    // the user's own (root) VAULT_TOKEN is inherited from the shell and must be ignored.
    const tokenFile = join(work, 'agent.token');
    writeFileSync(tokenFile, `${tokens.agent}\n`, { mode: 0o600 });
    stdio = new Client({ name: 'test', version: '1' });
    await stdio.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [vaultBin, 'mcp', 'serve'],
        cwd: work,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: work,
          VAULT_ADDR: dev.addr,
          VAULT_TENANT: dev.tenant,
          VAULT_TOKEN_FILE: tokenFile,
          VAULT_TOKEN: dev.token,
        },
        stderr: 'pipe',
      }),
    );

    httpServer = spawn(process.execPath, [vaultBin, 'mcp', 'serve', '--http', '--port', '0'], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', HOME: work, VAULT_ADDR: dev.addr },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    httpUrl = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(
        () => reject(new Error(`vault mcp serve --http did not start: ${out}`)),
        60_000,
      );
      httpServer!.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
        const match = /listening on (\S+)/.exec(out);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
      httpServer!.once('exit', (code) => reject(new Error(`vault mcp serve --http exited ${code}`)));
    });
  }, 180_000);

  afterAll(async () => {
    await stdio?.close();
    if (httpServer && httpServer.exitCode === null) {
      const exited = new Promise((resolve) => httpServer!.once('exit', resolve));
      httpServer.kill('SIGTERM');
      await exited;
    }
    await dev?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('lists the tools, each with a description and an input schema', async () => {
    const { tools } = await stdio.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([
      'list_credentials',
      'list_my_leases',
      'renew_lease',
      'request_lease',
      'reveal_credential',
      'revoke_lease',
      'run_with_credentials',
    ]);
    for (const tool of tools) {
      expect(tool.description!.length).toBeGreaterThan(40);
      expect(tool.inputSchema.type).toBe('object');
    }
    const run = tools.find((t) => t.name === 'run_with_credentials')!;
    expect(run.inputSchema.required).toEqual(expect.arrayContaining(['command', 'credentials']));
  });

  it('list_credentials shows metadata of what the agent may list, never values', async () => {
    const result = await call(stdio, 'list_credentials');
    expect(result.isError).toBeFalsy();
    const names = json(result).credentials.map((c: { name: string }) => c.name);
    expect(names).toEqual(expect.arrayContaining(['mcp-stripe', 'mcp-other']));
    expect(names).not.toContain('private-db');
    expect(text(result)).not.toContain('other-value-1234567890');
  });

  it('request, list, renew and revoke a lease; the value is never returned', async () => {
    const requested = json(await call(stdio, 'request_lease', { credential: 'mcp-stripe', ttl: '10m' }));
    expect(requested).toMatchObject({ credential: 'mcp-stripe', state: 'active', renewable: true });
    expect(requested.leaseId).toMatch(/^lease_/);
    expect(Date.parse(requested.expiresAt) - Date.now()).toBeGreaterThan(9 * 60_000);
    expect(requested).not.toHaveProperty('value');

    const mine = json(await call(stdio, 'list_my_leases'));
    expect(mine.identity).toEqual({ type: 'agent', name: 'claude-code' });
    expect(mine.leases.map((l: { leaseId: string }) => l.leaseId)).toContain(requested.leaseId);

    const renewed = json(await call(stdio, 'renew_lease', { leaseId: requested.leaseId, increment: '20m' }));
    expect(Date.parse(renewed.expiresAt)).toBeGreaterThan(Date.parse(requested.expiresAt));
    expect(renewed.grantedTtlSeconds).toBe(1200);

    const revoked = json(await call(stdio, 'revoke_lease', { leaseId: requested.leaseId }));
    expect(revoked.state).toBe('revoked');
    const gone = await call(stdio, 'renew_lease', { leaseId: requested.leaseId });
    expect(gone.isError).toBe(true);
    expect(text(gone)).toMatch(/^lease_revoked: /);
  });

  it('run_with_credentials injects values and scrubs every form of them from the output', async () => {
    const result = await call(stdio, 'run_with_credentials', {
      command:
        'echo "raw=$MCP_STRIPE"; printf %s "$MCP_STRIPE" | base64; echo "url=$(node -e \'process.stdout.write(encodeURIComponent(process.env.MCP_STRIPE))\')"; ' +
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion
        'echo "err=$MCP_STRIPE" >&2; echo "tokenfile=${VAULT_TOKEN_FILE:-unset}"; test "$MCP_STRIPE" = \'' +
        secret +
        "' && exit 3",
      credentials: [{ credential: 'mcp-stripe' }],
    });
    expect(result.isError).toBeFalsy();
    const out = json(result);
    expect(out.exitCode).toBe(3);
    expect(out.stdout).toContain('raw=[REDACTED:MCP_STRIPE]');
    expect(out.stdout).toContain('url=[REDACTED:MCP_STRIPE]');
    expect(out.stdout).toContain('tokenfile=unset');
    expect(out.stderr).toBe('err=[REDACTED:MCP_STRIPE]\n');
    expect(out.injected).toEqual([
      expect.objectContaining({ env: 'MCP_STRIPE', credential: 'mcp-stripe', revokedAfterRun: true }),
    ]);
    expect((await admin.leases.get(out.injected[0].leaseId)).state).toBe('revoked');
  });

  it('run_with_credentials uses a lease the agent holds, and bounds the run time', async () => {
    const lease = json(await call(stdio, 'request_lease', { credential: 'mcp-other' }));
    const used = json(
      await call(stdio, 'run_with_credentials', {
        command: 'printf "%s" "$OTHER" | wc -c',
        credentials: [{ leaseId: lease.leaseId, env: 'OTHER' }],
      }),
    );
    expect(used.exitCode).toBe(0);
    expect(used.stdout.trim()).toBe('22');
    expect((await admin.leases.get(lease.leaseId)).state).toBe('active');

    const slow = json(
      await call(stdio, 'run_with_credentials', {
        command: 'sleep 30',
        credentials: [{ credential: 'mcp-other' }],
        timeoutSeconds: 1,
      }),
    );
    expect(slow.timedOut).toBe(true);
    expect(slow.exitCode).toBeNull();
  });

  it('rejects bad input with a tool error, not a crash', async () => {
    const bad = await call(stdio, 'run_with_credentials', {
      command: 'true',
      credentials: [{ credential: 'mcp-other', env: '1-not-a-var' }],
    });
    expect(bad.isError).toBe(true);
    expect(text(bad)).toMatch(/not a valid environment variable name/);
    const missing = await call(stdio, 'request_lease', { credential: 'mcp-missing' });
    expect(missing.isError).toBe(true);
    expect(text(missing)).toMatch(/^(not_found|permission_denied): /);
  });

  it('denies reveal without the reveal action, and leasing outside the policy', async () => {
    const reveal = await call(stdio, 'reveal_credential', { credential: 'mcp-stripe' });
    expect(reveal.isError).toBe(true);
    expect(text(reveal)).toMatch(/^permission_denied: /);
    const outside = await call(stdio, 'request_lease', { credential: 'private-db' });
    expect(outside.isError).toBe(true);
    expect(text(outside)).toMatch(/^permission_denied: .*\n.*policy/s);
  });

  it('acts as the agent from VAULT_TOKEN_FILE, never as the inherited root VAULT_TOKEN', async () => {
    const mine = json(await call(stdio, 'list_my_leases'));
    expect(mine.identity).toEqual({ type: 'agent', name: 'claude-code' });
    const outside = await call(stdio, 'request_lease', { credential: 'private-db' });
    expect(text(outside)).toMatch(/^permission_denied: /);
  });

  it('over Streamable HTTP: each request is made as the agent whose token it carries, and runs nothing here', async () => {
    const agent = await httpClient(tokens.agent);
    const names = (await agent.listTools()).tools.map((t) => t.name);
    expect(names).toHaveLength(6);
    expect(names).not.toContain('run_with_credentials');
    const listed = json(await call(agent, 'list_credentials'));
    expect(listed.credentials.map((c: { name: string }) => c.name)).toContain('mcp-stripe');
    const ran = await call(agent, 'run_with_credentials', {
      command: 'echo "$MCP_STRIPE"',
      credentials: [{ credential: 'mcp-stripe' }],
    });
    expect(ran.isError).toBe(true);
    await agent.close();

    const nobody = await httpClient(tokens.nobody);
    const denied = await call(nobody, 'request_lease', { credential: 'mcp-stripe' });
    expect(denied.isError).toBe(true);
    expect(text(denied)).toMatch(/^permission_denied: /);
    await nobody.close();
  });

  it('over HTTP: no bearer or a bad token is refused with 401', async () => {
    await expect(httpClient(undefined)).rejects.toThrow(/401|token is required/);
    await expect(httpClient('vlt_not-a-token')).rejects.toThrow(/401|rejected/);
    const response = await fetch(httpUrl, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  it('reveals the value where the policy grants reveal', async () => {
    const revealer = await httpClient(tokens.revealer);
    const result = (await revealer.callTool({
      name: 'reveal_credential',
      arguments: { credential: 'mcp-stripe' },
    })) as ToolResult;
    expect(result.isError).toBeFalsy();
    expect(json(result).value).toBe(secret);
    await revealer.close();
  });

  it('no result seen by an agent without reveal contains the planted secret in any form', () => {
    expect(seen.length).toBeGreaterThan(10);
    for (const result of seen) {
      for (const form of forms) {
        expect(result).not.toContain(form);
        expect(result).not.toContain(JSON.stringify(form).slice(1, -1));
      }
    }
  });
});
