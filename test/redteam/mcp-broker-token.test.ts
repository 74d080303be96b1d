/**
 * Red team: the MCP server's tools run commands as the server's user, outside any sandbox the
 * agent's own shell is in (Claude Code's sandbox denies the agent's Bash reads of
 * ~/.config/ghoststack-vault, not the MCP server's). A command that prints the broker's token
 * file must not hand the agent that token: with it, the agent leases any credential the broker
 * may, and (as a workload) gets the value without a reveal grant.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Vault } from '../../src/sdk/index.js';
import { startVaultDev, type VaultDev, vaultBin } from '../support/vault-dev.js';

const value = `sk_live_${randomBytes(12).toString('hex')}`;

describe('red team: MCP tools and the broker token', () => {
  let dev: VaultDev;
  let work: string;
  let agentTokenFile: string;
  let brokerTokenFile: string;
  let brokerToken: string;
  let agentToken: string;
  let client: Client;

  beforeAll(async () => {
    dev = await startVaultDev();
    work = mkdtempSync(join(tmpdir(), 'vault-redteam-mcp-'));
    const admin = await Vault.connect({ addr: dev.addr, token: dev.token, tenant: dev.tenant });
    await admin.credentials.create({
      name: 'api-key',
      type: 'api-key',
      value,
      metadata: { hosts: 'localhost:9' },
    });
    await admin.policies.put('broker', {
      rules: [{ actions: ['read-metadata', 'lease'] }],
      actFor: [{ type: 'agent', name: '*' }],
    });
    await admin.policies.put('agent', { rules: [{ actions: ['list', 'read-metadata', 'lease'] }] });
    brokerToken = (
      await admin.tokens.create({
        identity: { type: 'workload', name: 'vault-broker' },
        policies: ['broker'],
        ttl: '1h',
      })
    ).token;
    agentToken = (
      await admin.tokens.create({
        identity: { type: 'agent', name: 'claude-code' },
        policies: ['agent'],
        ttl: '1h',
      })
    ).token;
    brokerTokenFile = join(work, 'broker.token');
    agentTokenFile = join(work, 'agent.token');
    writeFileSync(brokerTokenFile, brokerToken, { mode: 0o600 });
    writeFileSync(agentTokenFile, agentToken, { mode: 0o600 });
    client = new Client({ name: 'redteam', version: '1.0.0' });
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
        },
        stderr: 'pipe',
      }),
    );
  });
  afterAll(async () => {
    await client?.close();
    await dev?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const call = async (name: string, command: string) => {
    const result = (await client.callTool({
      name,
      arguments: { command, credentials: [{ credential: 'api-key' }] },
    })) as { isError?: boolean; content: { text?: string }[] };
    const text = result.content.map((c) => c.text ?? '').join('\n');
    expect(result.isError, text).toBeFalsy();
    return text;
  };

  it.each(['run_with_credentials', 'run_with_broker'])(
    '%s: printing the token files gives nothing away',
    async (tool) => {
      const text = await call(
        tool,
        `cat ${brokerTokenFile}; echo; base64 ${brokerTokenFile}; cat ${agentTokenFile}; echo; echo "v=$API_KEY"`,
      );
      expect(text).not.toContain(brokerToken);
      expect(text).not.toContain(Buffer.from(brokerToken).toString('base64'));
      expect(text).not.toContain(agentToken);
      expect(text).not.toContain(value);
      expect(text).toContain('[REDACTED:VAULT_BROKER_TOKEN]');
    },
  );
});
