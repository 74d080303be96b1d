/**
 * @ghoststack/vault-mcp as published: the packed tarball's `vault-mcp` bin runs under plain
 * Node (no tsx) with only its declared dependencies, and serves tools over stdio.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Vault } from '../../src/sdk/index.js';
import { repoRoot, startVaultDev, type VaultDev } from '../support/vault-dev.js';

describe('@ghoststack/vault-mcp as a package', () => {
  let dev: VaultDev;
  let work: string;
  let installed: string;
  let manifest: { name: string; bin: Record<string, string>; dependencies: Record<string, string> };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'vault-mcp-package-'));
    const [started] = await Promise.all([
      startVaultDev(),
      (async () => {
        const packed = JSON.parse(
          execFileSync('npm', ['pack', '--json', '--pack-destination', work], {
            cwd: join(repoRoot, 'packages/mcp'),
            encoding: 'utf8',
          }),
        ) as { filename: string }[];
        execFileSync('tar', ['-xzf', join(work, packed[0]!.filename), '-C', work]);
        installed = join(work, 'package');
      })(),
    ]);
    dev = started;
    manifest = JSON.parse(execFileSync('cat', [join(installed, 'package.json')], { encoding: 'utf8' }));
    // Only the declared dependencies are resolvable from the package.
    mkdirSync(join(installed, 'node_modules/@modelcontextprotocol'), { recursive: true });
    for (const dep of Object.keys(manifest.dependencies)) {
      symlinkSync(join(repoRoot, 'node_modules', dep), join(installed, 'node_modules', dep));
    }
  }, 180_000);

  afterAll(async () => {
    await dev?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('declares its bin and exactly the MCP SDK and zod as dependencies', () => {
    expect(manifest.name).toBe('@ghoststack/vault-mcp');
    expect(manifest.bin).toEqual({ 'vault-mcp': 'dist/mcp/main.js' });
    expect(Object.keys(manifest.dependencies).sort()).toEqual(['@modelcontextprotocol/sdk', 'zod']);
    // broker (and the certificate helpers it shares with webhook): run_with_broker ships with the server.
    expect(readdirSync(join(installed, 'dist')).sort()).toEqual([
      'broker',
      'contract',
      'lib',
      'mcp',
      'sdk',
      'webhook',
    ]);
  });

  it('the bin serves tools over stdio under plain node', async () => {
    const admin = await Vault.connect({ addr: dev.addr, token: dev.token });
    await admin.credentials.create({ name: 'pkg-key', type: 'api-key', value: 'pkg-secret-value-123' });
    const tokenFile = join(work, 'agent.token');
    // The server refuses a root token: it serves with an agent's own token.
    await admin.policies.put('pkg-agent', {
      rules: [{ credentials: ['pkg-*'], actions: ['list', 'lease'] }],
    });
    const agent = await admin.tokens.create({
      identity: { type: 'agent', name: 'pkg-agent' },
      policies: ['pkg-agent'],
      ttl: '10m',
    });
    writeFileSync(tokenFile, agent.token, { mode: 0o600 });
    const client = new Client({ name: 'test', version: '1' });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [join(installed, manifest.bin['vault-mcp']!)],
        env: { PATH: process.env.PATH ?? '', HOME: work, VAULT_ADDR: dev.addr, VAULT_TOKEN_FILE: tokenFile },
        stderr: 'pipe',
      }),
    );
    expect((await client.listTools()).tools).toHaveLength(7);
    const result = (await client.callTool({
      name: 'run_with_credentials',
      arguments: { command: 'echo "$PKG_KEY"', credentials: [{ credential: 'pkg-key' }] },
    })) as { content: { text: string }[] };
    expect(JSON.parse(result.content[0]!.text).stdout).toBe('[REDACTED:PKG_KEY]\n');
    await client.close();
  });

  it('prints usage', () => {
    const help = execFileSync(process.execPath, [join(installed, 'dist/mcp/main.js'), '--help'], {
      encoding: 'utf8',
    });
    expect(help).toMatch(/vault-mcp init/);
  });
});
