/**
 * The broker as users reach it: `vault broker -- CMD` (the CLI, a real process) and the MCP
 * tool run_with_broker through a real MCP client over stdio (`vault mcp serve`, as Claude Code
 * starts it), against a real `vault dev` and a real HTTPS upstream on localhost.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Vault } from '../../src/sdk/index.js';
import { repoRoot, startVaultDev, type VaultDev, vaultBin } from '../support/vault-dev.js';
import { startUpstream, type Upstream } from './support.js';

const value = `sk_live_${randomBytes(12).toString('hex')}`;

describe('vault broker surfaces', () => {
  let dev: VaultDev;
  let upstream: Upstream;
  let work: string;
  let agentTokenFile: string;
  let brokerTokenFile: string;
  let caFile: string;

  beforeAll(async () => {
    [dev, upstream] = await Promise.all([startVaultDev(), startUpstream(['localhost'])]);
    work = mkdtempSync(join(tmpdir(), 'vault-broker-surfaces-'));
    const admin = await Vault.connect({ addr: dev.addr, token: dev.token, tenant: dev.tenant });
    await admin.credentials.create({
      name: 'local-api-key',
      type: 'api-key',
      value,
      metadata: { hosts: `localhost:${upstream.port}` },
    });
    await admin.policies.put('broker', {
      rules: [{ actions: ['read-metadata', 'lease'] }],
      actFor: [{ type: 'agent', name: '*' }],
    });
    await admin.policies.put('agent', { rules: [{ actions: ['list', 'read-metadata', 'lease'] }] });
    const broker = await admin.tokens.create({
      identity: { type: 'workload', name: 'vault-broker' },
      policies: ['broker'],
      ttl: '1h',
    });
    const agent = await admin.tokens.create({
      identity: { type: 'agent', name: 'claude-code' },
      policies: ['agent'],
      ttl: '1h',
    });
    brokerTokenFile = join(work, 'broker.token');
    agentTokenFile = join(work, 'agent.token');
    caFile = join(work, 'upstream-ca.pem');
    writeFileSync(brokerTokenFile, broker.token, { mode: 0o600 });
    writeFileSync(agentTokenFile, agent.token, { mode: 0o600 });
    writeFileSync(caFile, upstream.caPem);
  });
  afterAll(async () => {
    await upstream?.close();
    await dev?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const curl = () =>
    `curl -sS -H "Authorization: Bearer $LOCAL_API_KEY" https://localhost:${upstream.port}/v1/ping; echo; echo "env=$LOCAL_API_KEY"`;

  it('vault broker -- CMD: the command calls the API with a placeholder; the upstream gets the value', async () => {
    const before = upstream.received.length;
    const child = spawn(
      process.execPath,
      [
        vaultBin,
        'broker',
        '--credential',
        'local-api-key',
        '--for',
        'agent:claude-code',
        '--upstream-ca',
        caFile,
        '--',
        'sh',
        '-c',
        curl(),
      ],
      {
        cwd: repoRoot,
        env: {
          PATH: process.env.PATH,
          HOME: work,
          VAULT_ADDR: dev.addr,
          VAULT_TENANT: dev.tenant,
          VAULT_BROKER_TOKEN_FILE: brokerTokenFile,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/you sent: Bearer vault-ph-/);
    expect(stdout).toMatch(/env=vault-ph-/);
    expect(stdout).not.toContain(value);
    expect(upstream.received.slice(before)[0]!.headers.authorization).toBe(`Bearer ${value}`);
  });

  it("vault broker refuses an agent's token as its own: the broker needs an identity that acts for the agent", async () => {
    const child = spawn(
      process.execPath,
      [vaultBin, 'broker', '--credential', 'local-api-key', '--for', 'agent:claude-code', '--', 'true'],
      {
        cwd: repoRoot,
        env: {
          PATH: process.env.PATH,
          HOME: work,
          VAULT_ADDR: dev.addr,
          VAULT_TENANT: dev.tenant,
          VAULT_BROKER_TOKEN_FILE: agentTokenFile,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/refuses to run with an agent's token \(agent "claude-code"\)/);
  });

  it('run_with_broker over MCP stdio: same, and the broker token never reaches the command', async () => {
    const client = new Client({ name: 'broker-test', version: '1.0.0' });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [vaultBin, 'mcp', 'serve'],
        cwd: work,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: work,
          VAULT_ADDR: dev.addr,
          VAULT_TENANT: dev.tenant,
          VAULT_TOKEN_FILE: agentTokenFile,
          VAULT_BROKER_TOKEN_FILE: brokerTokenFile,
          VAULT_BROKER_UPSTREAM_CA_FILE: caFile,
        },
        stderr: 'pipe',
      }),
    );
    try {
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name)).toContain('run_with_broker');
      const before = upstream.received.length;
      const result = (await client.callTool({
        name: 'run_with_broker',
        arguments: {
          command: `${curl()}; env | grep -c VAULT_BROKER || true; env | grep -c VAULT_TOKEN || true`,
          credentials: [{ credential: 'local-api-key' }],
        },
      })) as { isError?: boolean; content: { text?: string }[] };
      const text = result.content.map((c) => c.text ?? '').join('\n');
      expect(result.isError, text).toBeFalsy();
      const body = JSON.parse(text);
      expect(body.exitCode).toBe(0);
      expect(body.stdout).toMatch(/you sent: Bearer vault-ph-/);
      expect(body.stdout).toMatch(/\n0\n0\n$/);
      expect(text).not.toContain(value);
      expect(upstream.received.slice(before)[0]!.headers.authorization).toBe(`Bearer ${value}`);
      // Audited as the agent's use, by the broker.
      const admin = await Vault.connect({ addr: dev.addr, token: dev.token, tenant: dev.tenant });
      const uses = await admin.audit.query({ action: 'lease.use' });
      expect(uses.at(-1)).toMatchObject({
        actor: { type: 'workload', name: 'vault-broker' },
        actingFor: { type: 'agent', name: 'claude-code' },
        outcome: 'allowed',
      });
    } finally {
      await client.close();
    }
  });
});
