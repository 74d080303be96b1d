/**
 * The packages as users get them from a registry: @ghoststack/vault-sdk, @ghoststack/vault-mcp
 * and @ghoststack/vault-cli are published to a real local npm registry (Verdaccio), then
 * installed the documented ways with `npm_config_registry` pointing at it:
 *
 * - `npx @ghoststack/vault-mcp init`, the seed's command verbatim, in a fresh project: the
 *   `.mcp.json` it writes starts a server a real MCP client lists tools from;
 * - `npm install @ghoststack/vault-sdk` and the seed's example;
 * - `npm i -g @ghoststack/vault-cli` into a temporary prefix: `vault --version`, `vault dev`
 *   from the installed package, and `vault mcp init` without `--command`.
 */
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubernetesClientPackage } from '../../src/k8s/client-module.js';
import { Vault } from '../../src/sdk/index.js';
import { type LocalRegistry, publishPackages, startRegistry } from '../support/registry.js';
import { startVaultDev, type VaultDev } from '../support/vault-dev.js';

const run = promisify(execFile);
let registry: LocalRegistry;
let version: string;
let dev: VaultDev;
let work: string;

/** A user's environment: the registry, a home of its own, and the dev server's export lines. */
const userEnv = (home: string, extra: Record<string, string> = {}) => ({
  PATH: process.env.PATH ?? '',
  HOME: home,
  XDG_CONFIG_HOME: join(home, '.config'),
  npm_config_cache: join(process.env.HOME ?? '/root', '.npm'), // tarballs by integrity; fast
  ...registry.env,
  VAULT_ADDR: dev.addr,
  VAULT_TOKEN: dev.token,
  VAULT_TENANT: dev.tenant,
  ...extra,
});

async function listTools(
  entry: { command: string; args: string[]; env: Record<string, string> },
  cwd: string,
  env: Record<string, string>,
) {
  const client = new Client({ name: 'claude-code-like', version: '1' });
  await client.connect(
    new StdioClientTransport({
      command: entry.command,
      args: entry.args,
      env: { ...env, ...entry.env },
      cwd,
      stderr: 'pipe',
    }),
  );
  try {
    const tools = (await client.listTools()).tools.map((tool) => tool.name);
    const listed = (await client.callTool({ name: 'list_credentials', arguments: {} })) as {
      content: { text: string }[];
    };
    return {
      tools,
      credentials: JSON.parse(listed.content[0]!.text).credentials.map((c: { name: string }) => c.name),
    };
  } finally {
    await client.close();
  }
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'vault-registry-test-'));
  [registry, dev] = await Promise.all([startRegistry(), startVaultDev()]);
  version = publishPackages(registry, ['sdk', 'mcp', 'cli']);
  // What an agent may see: one credential and a policy bound to the agent identity.
  const admin = await Vault.connect({ addr: dev.addr, token: dev.token, tenant: dev.tenant });
  await admin.credentials.create({ name: 'registry-key', type: 'api-key', value: 'sk_registry_1' });
  await admin.policies.put('registry-agent', {
    rules: [{ credentials: ['registry-*'], actions: ['list', 'lease'] }],
  });
  await admin.identities.put('agent', 'claude-code', { policies: ['registry-agent'] });
}, 1_800_000); // builds three packages when their sources changed; slow on a busy machine

afterAll(async () => {
  await dev?.stop();
  await registry?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('published to a local registry', () => {
  it('npx @ghoststack/vault-mcp init (verbatim) writes an .mcp.json that serves the tools', async () => {
    const home = join(work, 'mcp-home');
    const project = join(work, 'mcp-project');
    mkdirSync(home);
    mkdirSync(project);
    const env = userEnv(home);
    const init = await run('sh', ['-c', 'npx @ghoststack/vault-mcp init'], { cwd: project, env });
    expect(init.stdout).toContain(`Wrote ${join(realpathSync(project), '.mcp.json')}`);
    expect(init.stdout).toContain('Claude Code starts the server with: npx -y @ghoststack/vault-mcp');
    const entry = JSON.parse(readFileSync(join(project, '.mcp.json'), 'utf8')).mcpServers.vault;
    expect(entry.command).toBe('npx');
    // Claude Code starts it from the user's environment, without the user's token.
    const { VAULT_TOKEN: _token, ...withoutToken } = env;
    const listed = await listTools(entry, project, withoutToken);
    expect(listed.tools).toContain('list_credentials');
    expect(listed.tools).toContain('run_with_credentials');
    expect(listed.credentials).toEqual(['registry-key']);
  }, 600_000);

  it('npm install @ghoststack/vault-sdk and the seed example', async () => {
    const app = join(work, 'sdk-app');
    mkdirSync(app);
    const env = userEnv(join(work, 'sdk-home'), { VAULT_TENANT: '' });
    mkdirSync(env.HOME);
    await run(
      'sh',
      ['-c', 'npm init -y >/dev/null && npm pkg set type=module && npm install @ghoststack/vault-sdk'],
      {
        cwd: app,
        env,
      },
    );
    const installed = JSON.parse(
      readFileSync(join(app, 'node_modules/@ghoststack/vault-sdk/package.json'), 'utf8'),
    );
    expect(installed.version).toBe(version);
    writeFileSync(
      join(app, 'example.mjs'),
      `import { Vault } from '@ghoststack/vault-sdk';
const vault = await Vault.connect({ tenant: 'my-org', token: process.env.VAULT_TOKEN });
await vault.credentials.create({ name: 'stripe-api-key', type: 'api-key', value: 'sk_live_...',
  metadata: { service: 'stripe', environment: 'production' } });
const lease = await vault.leases.create({ credentialName: 'stripe-api-key', ttl: '15m',
  identity: { type: 'agent', name: 'claude-code' } });
console.log(JSON.stringify({ value: lease.value, inMs: lease.expiresAt.getTime() - Date.now() }));
`,
    );
    const { stdout } = await run(process.execPath, ['example.mjs'], { cwd: app, env });
    const printed = JSON.parse(stdout);
    expect(printed.value).toBe('sk_live_...');
    expect(printed.inMs).toBeGreaterThan(14 * 60_000);
    expect(printed.inMs).toBeLessThanOrEqual(15 * 60_000);
  }, 600_000);

  it('npm i -g @ghoststack/vault-cli: vault --version, vault dev, and vault mcp init without --command', async () => {
    const prefix = join(work, 'prefix');
    const home = join(work, 'cli-home');
    mkdirSync(home);
    const env = userEnv(home, { npm_config_prefix: prefix });
    await run('npm', ['i', '-g', '@ghoststack/vault-cli'], { env, maxBuffer: 16 * 1024 * 1024 });
    const vault = join(prefix, 'bin/vault');
    const withBin = { ...env, PATH: `${join(prefix, 'bin')}:${env.PATH}` };
    expect((await run('vault', ['--version'], { env: withBin })).stdout).toBe(`${version}\n`);
    // No TypeScript at run time: the package ships JavaScript and does not depend on tsx.
    const manifest = JSON.parse(
      readFileSync(join(prefix, 'lib/node_modules/@ghoststack/vault-cli/package.json'), 'utf8'),
    );
    expect(Object.keys(manifest.dependencies)).not.toContain('tsx');
    expect(realpathSync(vault)).toMatch(/dist\/cli\/main\.js$/);

    // The installed CLI runs a server (its native store module built on install) ...
    const data = join(work, 'cli-dev');
    const envFile = join(work, 'cli-dev.env');
    await run('vault', ['dev', '--port', '0', '--data-dir', data, '--export-file', envFile, '--detach'], {
      env: { ...withBin, VAULT_ADDR: '', VAULT_TOKEN: '', VAULT_TENANT: '' },
    });
    const exported = Object.fromEntries(
      [...readFileSync(envFile, 'utf8').matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]),
    );
    try {
      expect(
        (await run('vault', ['whoami', '--json'], { env: { ...withBin, ...exported } })).stdout,
      ).toContain('dev-root');
      // ... and `vault mcp init` has Claude Code start this installed CLI.
      const project = join(work, 'cli-project');
      mkdirSync(project);
      const init = await run('vault', ['mcp', 'init'], { cwd: project, env: withBin });
      expect(init.stdout).toContain(
        `Claude Code starts the server with: ${process.execPath} ${vault} mcp serve`,
      );
      const entry = JSON.parse(readFileSync(join(project, '.mcp.json'), 'utf8')).mcpServers.vault;
      const listed = await listTools(entry, project, { PATH: process.env.PATH ?? '', HOME: home });
      expect(listed.credentials).toEqual(['registry-key']);
    } finally {
      process.kill(Number(exported.VAULT_DEV_PID), 'SIGTERM');
    }
  }, 1_200_000);

  it('npm i -g @ghoststack/vault-cli leaves out the Kubernetes client; the commands that need it say how to add it, and work once it is', async () => {
    const prefix = join(work, 'k8s-prefix');
    const home = join(work, 'k8s-home');
    mkdirSync(home);
    const env = userEnv(home, { npm_config_prefix: prefix });
    const withBin = { ...env, PATH: `${join(prefix, 'bin')}:${env.PATH}` };
    await run('npm', ['i', '-g', '@ghoststack/vault-cli'], { env, maxBuffer: 16 * 1024 * 1024 });
    const cliModules = join(prefix, 'lib/node_modules/@ghoststack/vault-cli/node_modules');
    expect(existsSync(join(cliModules, '@kubernetes/client-node'))).toBe(false);
    expect(existsSync(join(cliModules, 'better-sqlite3'))).toBe(true);

    // The operator group still loads (key rotation and the first token need no Kubernetes client) ...
    expect((await run('vault', ['operator', 'root-token', '--help'], { env: withBin })).stdout).toContain(
      'root-token',
    );
    // ... and each command that talks to Kubernetes says what to install.
    const missing = `npm i -g ${kubernetesClientPackage}`;
    for (const args of [
      ['operator', 'run'],
      ['webhook', '--namespace', 'vault-system', '--agent-image', 'vault:test'],
    ]) {
      const failed = await run('vault', args, { env: withBin }).then(
        () => undefined,
        (err: { code: number; stderr: string }) => err,
      );
      expect(failed, `vault ${args.join(' ')}`).toBeDefined();
      expect(failed!.stderr, `vault ${args.join(' ')}`).toContain(missing);
      expect(failed!.stderr).not.toContain('    at '); // a message, not a stack trace
    }

    // Installed as the message says, beside the CLI, the command gets past loading it.
    await run('sh', ['-c', missing], { env, maxBuffer: 16 * 1024 * 1024 });
    const afterInstall = await run(
      'vault',
      ['operator', 'run', '--kubeconfig', join(home, 'none.kubeconfig')],
      {
        env: withBin,
      },
    ).then(
      () => undefined,
      (err: { stderr: string }) => err,
    );
    expect(afterInstall?.stderr).toContain('none.kubeconfig'); // the kubeconfig, not the module
    expect(afterInstall?.stderr).not.toContain(missing);
  }, 1_200_000);
});
