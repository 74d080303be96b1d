/** The `vault` CLI as users run it (real processes) against a real `vault dev`. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitCodes } from '../../src/cli/exit-codes.js';
import { Vault } from '../../src/sdk/index.js';
import { repoRoot, runVault, startVaultDev, type VaultDev, vaultBin } from '../support/vault-dev.js';

describe('vault CLI', () => {
  let dev: VaultDev;
  let work: string;
  let env: Record<string, string>;

  const vault = (
    args: string[],
    options: { input?: string; env?: Record<string, string>; cwd?: string } = {},
  ) => runVault(args, { cwd: options.cwd ?? work, env: { ...env, ...options.env }, input: options.input });

  const ok = async (args: string[], options: Parameters<typeof vault>[1] = {}) => {
    const run = await vault(args, options);
    if (run.code !== 0) throw new Error(`vault ${args.join(' ')} exited ${run.code}: ${run.stderr}`);
    return run;
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'vault-cli-test-'));
    dev = await startVaultDev();
    env = {
      PATH: process.env.PATH ?? '',
      HOME: work,
      XDG_CONFIG_HOME: join(work, 'config'),
      VAULT_ADDR: dev.addr,
      VAULT_TOKEN: dev.token,
      VAULT_TENANT: dev.tenant,
    };
  }, 120_000);

  afterAll(async () => {
    await dev?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('credentials: values come from stdin or a file, never argv; tables and --json', async () => {
    const created = await ok(
      [
        'credentials',
        'create',
        'cli-api',
        '--type',
        'api-key',
        '--value-stdin',
        '--label',
        'env=test',
        '--json',
      ],
      { input: 'sk_cli_secret_value\n' },
    );
    const credential = JSON.parse(created.stdout);
    expect(credential).toMatchObject({
      name: 'cli-api',
      type: 'api-key',
      currentVersion: 1,
      metadata: { env: 'test' },
    });
    expect(created.stdout + created.stderr).not.toContain('sk_cli_secret_value');

    const noValue = await vault(['credentials', 'create', 'cli-none', '--type', 'generic']);
    expect(noValue.code).toBe(exitCodes.usage);
    expect(noValue.stderr).toMatch(/--value-stdin.*--value-file/);

    const duplicate = await vault(
      ['credentials', 'create', 'cli-api', '--type', 'api-key', '--value-stdin'],
      {
        input: 'x',
      },
    );
    expect(duplicate.code).toBe(exitCodes.conflict);
    // The same create again (a quick start run twice) says so instead of "Created".
    const repeated = await ok(
      ['credentials', 'create', 'cli-api', '--type', 'api-key', '--value-stdin', '--label', 'env=test'],
      { input: 'sk_cli_secret_value\n' },
    );
    expect(repeated.stderr).toMatch(/^Unchanged \(it exists with this value\): cli-api \(version 1\)/);
    expect(repeated.stderr).not.toMatch(/Created/);

    const list = await ok(['credentials', 'list']);
    expect(list.stdout).toMatch(/^NAME\s+TYPE\s+VERSION\s+LABELS\s+UPDATED\n/);
    expect(list.stdout).toMatch(/cli-api\s+api-key\s+1\s+env=test/);

    const updated = JSON.parse(
      (
        await ok([
          'credentials',
          'update',
          'cli-api',
          '--label',
          'env=test',
          '--label',
          'hosts=api.example.com',
          '--max-ttl',
          '2h',
          '--json',
        ])
      ).stdout,
    );
    expect(updated.metadata).toEqual({ env: 'test', hosts: 'api.example.com' });
    expect(updated.leases.maxTtl).toBe('2h');
    expect(updated.currentVersion).toBe(1);
    const relabelled = JSON.parse(
      (await ok(['credentials', 'update', 'cli-api', '--label', 'env=prod', '--json'])).stdout,
    );
    expect(relabelled.metadata).toEqual({ env: 'prod' }); // the labels given replace all of them
    const nothing = await vault(['credentials', 'update', 'cli-api']);
    expect(nothing.code).toBe(exitCodes.usage);
    expect(nothing.stderr).toContain('give --label (repeatable), --default-ttl or --max-ttl');
    const unknown = await vault(['credentials', 'update', 'cli-missing', '--label', 'a=b']);
    expect(unknown.code).toBe(exitCodes.notFound);
    await ok(['credentials', 'update', 'cli-api', '--label', 'env=test']);

    const valueFile = join(work, 'value.txt');
    writeFileSync(valueFile, 'sk_cli_second\n');
    const put = JSON.parse(
      (await ok(['credentials', 'put', 'cli-api', '--value-file', valueFile, '--json'])).stdout,
    );
    expect(put.currentVersion).toBe(2);
    await ok(['credentials', 'create', 'cli-gen', '--type', 'password', '--generate', '--length', '40']);
    const rotated = JSON.parse((await ok(['credentials', 'rotate', 'cli-gen', '--json'])).stdout);
    expect(rotated.currentVersion).toBe(2);
    expect(rotated.versions[0].fingerprint).not.toBe(rotated.versions[1].fingerprint);

    const missing = await vault(['credentials', 'get', 'cli-missing']);
    expect(missing.code).toBe(exitCodes.notFound);
    expect(missing.stderr).toMatch(/hint: .*vault credentials list/);
  }, 90_000);

  it('lease: create with a TTL, read the value, renew, list, revoke; reading a revoked lease exits 7', async () => {
    const before = Date.now();
    const lease = JSON.parse((await ok(['lease', 'create', 'cli-api', '--ttl', '15m', '--json'])).stdout);
    expect(lease).not.toHaveProperty('value');
    expect(Date.parse(lease.expiresAt) - before).toBeGreaterThanOrEqual(15 * 60_000 - 5_000);
    expect((await ok(['lease', 'read', lease.id])).stdout).toBe('sk_cli_second\n');

    const shown = JSON.parse((await ok(['lease', 'create', 'cli-api', '--json', '--show-value'])).stdout);
    expect(shown.value).toBe('sk_cli_second');

    const renewed = await ok(['lease', 'renew', lease.id, '--increment', '30m']);
    expect(renewed.stdout).toMatch(/renewable:\s+yes \(renewed 1x\)/);
    expect((await ok(['lease', 'list', '--credential', 'cli-api'])).stdout).toContain(lease.id);

    await ok(['lease', 'revoke', lease.id]);
    // A revoked lease's row says when it ended, not when it would have expired.
    const row = (await ok(['lease', 'list', '--credential', 'cli-api', '--state', 'revoked'])).stdout
      .split('\n')
      .find((line) => line.startsWith(lease.id));
    expect(row).toMatch(/revoked\s+revoked (just now|\d+s ago)\s*$/);
    const read = await vault(['lease', 'read', lease.id]);
    expect(read.code).toBe(exitCodes.leaseGone);
    expect(read.stderr).toMatch(/hint: create a new lease/);

    const bulk = await ok(['lease', 'revoke', '--credential', 'cli-api']);
    expect(bulk.stdout).toMatch(/Revoked 1 lease\./);
  });

  it('run: injects a credential, scrubs it from the output, exits with the command’s code', async () => {
    const run = await vault([
      'run',
      '--token-from-env',
      '--credential',
      'cli-api=API_KEY',
      '--',
      'sh',
      '-c',
      'echo "key=$API_KEY"; printf %s "$API_KEY" | base64 >&2; exit 4',
    ]);
    expect(run.code).toBe(4);
    expect(run.stdout).toBe('key=[REDACTED:API_KEY]\n');
    expect(run.stderr).toBe('[REDACTED:API_KEY]\n');
    expect((await vault(['run', '--token-from-env', '--', 'true'])).code).toBe(exitCodes.usage);
    const missing = await vault(['run', '--token-from-env', '--credential', 'cli-nope', '--', 'true']);
    expect(missing.code).toBe(exitCodes.notFound);
  });

  it('run: ignores an inherited VAULT_TOKEN unless --token-from-env, and says so', async () => {
    const run = await vault(['run', '--credential', 'cli-api', '--', 'true']);
    expect(run.code).toBe(exitCodes.usage);
    expect(run.stderr).toMatch(/VAULT_TOKEN is set but not used.*--token-from-env/s);
    expect(run.stderr).not.toContain(dev.token);
  });

  it('run: an agent token with the README policy (lease, maxTtl 1h) works without --timeout', async () => {
    const admin = await Vault.connect({ addr: dev.addr, token: dev.token });
    await admin.policies.put('cli-run-agent', {
      rules: [{ credentials: ['cli-api'], actions: ['list', 'read-metadata', 'lease'], maxTtl: '1h' }],
    });
    const { token } = await admin.tokens.create({
      identity: { type: 'agent', name: 'cli-runner' },
      policies: ['cli-run-agent'],
      ttl: '1h',
    });
    const tokenFile = join(work, 'cli-runner.token');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const run = await vault(['run', '--credential', 'cli-api=K', '--', 'sh', '-c', 'echo "k=$K"'], {
      env: { VAULT_TOKEN_FILE: tokenFile },
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('k=[REDACTED:K]\n');
    // The agent holds no reveal: the value reached the command through lease.use, not a read.
    const used = await admin.audit.query({ identityName: 'cli-runner', action: 'lease.use' });
    expect(used.at(-1)).toMatchObject({ outcome: 'allowed', reason: 'vault run' });
  });

  it('audit: verify and tail', async () => {
    const verified = await ok(['audit', 'verify']);
    expect(verified.stdout).toMatch(/^Audit chain intact: \d+ records/);
    const tail = await ok(['audit', 'tail', '-n', '3', '--json', '--action', 'lease.create']);
    const lines = tail.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines).toHaveLength(3);
    expect(lines.every((record) => record.action === 'lease.create')).toBe(true);
  });

  it('tokens and policies: an agent token is denied outside its policy (exit 4), revoked tokens exit 3', async () => {
    const policyFile = join(work, 'policy.yaml');
    writeFileSync(policyFile, 'rules:\n  - credentials: ["cli-other"]\n    actions: [lease]\n');
    await ok(['policies', 'put', 'cli-bot', '--file', policyFile]);
    const created = JSON.parse(
      (
        await ok([
          'tokens',
          'create',
          '--identity',
          'agent:cli-bot',
          '--policy',
          'cli-bot',
          '--ttl',
          '10m',
          '--json',
        ])
      ).stdout,
    );
    const asBot = { VAULT_TOKEN: created.token };
    const denied = await vault(['lease', 'create', 'cli-api'], { env: asBot });
    expect(denied.code).toBe(exitCodes.denied);
    expect(denied.stderr).toMatch(/hint: your token's policies do not allow this/);
    expect((await ok(['tokens', 'lookup', created.accessor])).stdout).toMatch(/identity:\s+agent:cli-bot/);
    await ok(['tokens', 'revoke', created.accessor]);
    const revoked = await vault(['whoami'], { env: asBot });
    expect(revoked.code).toBe(exitCodes.unauthenticated);
    expect(revoked.stderr).toMatch(/hint: log in with `vault login`/);
  });

  it('login stores the token 0600 in the config directory; logout removes it', async () => {
    const login = await ok(['login', '--token-stdin'], { input: `${dev.token}\n` });
    expect(login.stdout).toMatch(/Logged in as human:dev-root/);
    const tokenFile = join(work, 'config/ghoststack-vault/token');
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const noEnv = { VAULT_TOKEN: '', VAULT_ADDR: '', VAULT_TENANT: '' };
    expect((await ok(['whoami'], { env: noEnv })).stdout).toMatch(/identity:\s+human:dev-root/);
    await ok(['logout']);
    expect((await vault(['whoami'], { env: noEnv })).code).not.toBe(0);
    expect((await vault(['login'], { input: '' })).code).toBe(exitCodes.usage);
  });

  it('an unreachable server exits 8 and says how to fix it', async () => {
    const run = await vault(['credentials', 'list'], { env: { VAULT_ADDR: 'http://127.0.0.1:1' } });
    expect(run.code).toBe(exitCodes.unavailable);
    expect(run.stderr).toMatch(/hint: start a server .*VAULT_ADDR/);
  });

  it('mcp init merges .mcp.json, keeps the agent token out of the project, and Claude Code can start the server from it', async () => {
    const project = join(work, 'project');
    mkdirSync(project);
    writeFileSync(
      join(project, '.mcp.json'),
      JSON.stringify({ mcpServers: { other: { command: 'other-server' } } }),
    );
    await ok(['policies', 'put', 'claude', '--file', '-'], {
      input: JSON.stringify({
        rules: [{ credentials: ['cli-*'], actions: ['list', 'read-metadata', 'lease'] }],
      }),
    });
    const serverCommand = `${process.execPath} ${vaultBin} mcp serve`;
    const first = JSON.parse(
      (
        await ok(['mcp', 'init', '--policy', 'claude', '--command', serverCommand, '--json'], {
          cwd: project,
        })
      ).stdout,
    );
    // Without --command, init has Claude Code start this same CLI, by absolute paths, and says so.
    const second = await ok(['mcp', 'init', '--policy', 'claude'], { cwd: project });
    expect(second.stdout).toMatch(/Updated .*\.mcp\.json/);
    expect(second.stdout).toContain(`Claude Code starts the server with: ${serverCommand}`);
    expect(second.stdout).toContain(`Revoked the token it replaces (accessor ${first.accessor})`);

    const config = JSON.parse(readFileSync(join(project, '.mcp.json'), 'utf8'));
    expect(config.mcpServers.other).toEqual({ command: 'other-server' });
    const entry = config.mcpServers.vault;
    expect([entry.command, ...entry.args]).toEqual([process.execPath, vaultBin, 'mcp', 'serve']);
    expect(entry.env).toEqual({
      VAULT_ADDR: dev.addr,
      VAULT_TENANT: dev.tenant,
      VAULT_TOKEN_FILE: first.tokenFile,
    });
    expect(first.tokenFile.startsWith(join(work, 'config/ghoststack-vault/agents/'))).toBe(true);
    expect(statSync(first.tokenFile).mode & 0o777).toBe(0o600);
    const token = readFileSync(first.tokenFile, 'utf8').trim();
    expect(readFileSync(join(project, '.mcp.json'), 'utf8')).not.toContain(token);
    const agent = await Vault.connect({ addr: dev.addr, token });
    expect(agent.self.identity).toEqual({ type: 'agent', name: 'claude-code' });
    expect(agent.self.expiresAt.getTime() - Date.now()).toBeLessThanOrEqual(8 * 3_600_000);

    // Start the server exactly as Claude Code would from .mcp.json.
    const client = new Client({ name: 'claude-code-like', version: '1' });
    await client.connect(
      new StdioClientTransport({
        command: entry.command,
        args: entry.args,
        env: { PATH: process.env.PATH ?? '', HOME: work, ...entry.env },
        cwd: project,
        stderr: 'pipe',
      }),
    );
    const result = (await client.callTool({ name: 'list_credentials', arguments: {} })) as {
      content: { text: string }[];
    };
    expect(JSON.parse(result.content[0]!.text).credentials.map((c: { name: string }) => c.name)).toContain(
      'cli-api',
    );
    await client.close();
  });

  it('prints help with the exit codes', async () => {
    const help = await ok(['--help'], { cwd: repoRoot });
    expect(help.stdout).toMatch(/Exit codes:\n\s+0\s+success/);
    for (const command of ['dev', 'credentials', 'lease', 'run', 'audit', 'tokens', 'mcp', 'login']) {
      expect(help.stdout).toContain(`  ${command}`);
    }
  });
});
