/**
 * The MCP server as an attacker meets it: started with the wrong token, reached through a
 * rebinding DNS name or from a web page, asked to run commands over HTTP. Real processes, a
 * real `vault dev`, the SDK's real client, real HTTP and HTTPS.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpMcpServer, serveHttp } from '../../src/mcp/http.js';
import { Vault } from '../../src/sdk/index.js';
import { startVaultDev, type VaultDev, vaultBin } from '../support/vault-dev.js';

const secret = 'sk_live_hardening_2Lm/8+Qx=';
const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
});

describe('MCP server hardening', () => {
  let dev: VaultDev;
  let admin: Vault;
  let work: string;
  let agentToken: string;
  let humanToken: string;
  const files: Record<string, string> = {};
  const servers: HttpMcpServer[] = [];

  const serveCli = (args: string[], env: Record<string, string>, stdin = '') =>
    new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [vaultBin, 'mcp', 'serve', ...args], {
        cwd: work,
        env: { PATH: process.env.PATH ?? '', HOME: work, VAULT_ADDR: dev.addr, ...env },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stderr = '';
      let stdout = '';
      child.stderr.setEncoding('utf8').on('data', (c: string) => {
        stderr += c;
      });
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        stdout += c;
      });
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stderr, stdout }));
      child.stdin.end(stdin);
    });

  const post = (url: string, headers: Record<string, string>, body = initialize) =>
    fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...headers,
      },
      body,
    });

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'vault-mcp-hardening-'));
    dev = await startVaultDev();
    admin = await Vault.connect({ addr: dev.addr, token: dev.token });
    await admin.credentials.create({ name: 'hard-key', type: 'api-key', value: secret });
    await admin.policies.put('hard-agent', {
      rules: [{ credentials: ['hard-*'], actions: ['list', 'read-metadata', 'lease'] }],
    });
    agentToken = (
      await admin.tokens.create({ identity: { type: 'agent', name: 'hard' }, policies: ['hard-agent'] })
    ).token;
    humanToken = (
      await admin.tokens.create({ identity: { type: 'human', name: 'ada' }, policies: ['hard-agent'] })
    ).token;
    for (const [name, token] of Object.entries({ agent: agentToken, human: humanToken, root: dev.token })) {
      files[name] = join(work, `${name}.token`);
      writeFileSync(files[name]!, `${token}\n`, { mode: 0o600 });
    }
  }, 180_000);

  afterAll(async () => {
    for (const server of servers) await server.close();
    await dev?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('stdio: ignores an inherited VAULT_TOKEN unless --token-from-env, and says so', async () => {
    const run = await serveCli([], { VAULT_TOKEN: agentToken });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/VAULT_TOKEN is set but not used.*--token-from-env/s);
  });

  it("stdio: refuses to serve with a root, system or person's token, with a clear error", async () => {
    const root = await serveCli(['--token-from-env'], { VAULT_TOKEN: dev.token });
    expect(root.code).toBe(1);
    expect(root.stderr).toMatch(/refuses to serve with a system token/);
    const rootFile = await serveCli(['--token-file', files.root!], {});
    expect(rootFile.code).toBe(1);
    const human = await serveCli([], { VAULT_TOKEN_FILE: files.human! });
    expect(human.code).toBe(1);
    expect(human.stderr).toMatch(/refuses to serve with a person's token \(human "ada"\)/);
    for (const output of [root.stderr, rootFile.stderr, human.stderr]) {
      expect(output).not.toContain(dev.token);
      expect(output).not.toContain(humanToken);
    }
  });

  it('stdio: exits 0 when stdin closes', async () => {
    const run = await serveCli([], { VAULT_TOKEN_FILE: files.agent! });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
  });

  it('HTTP: refuses a person or root token per request with 403', async () => {
    const server = await serveHttp({ host: '127.0.0.1', port: 0, addr: dev.addr, env: {}, cwd: work });
    servers.push(server);
    for (const token of [humanToken, dev.token]) {
      const response = await post(server.url, { authorization: `Bearer ${token}` });
      expect(response.status).toBe(403);
      expect(await response.text()).toMatch(/refuses to serve with a (person's|system) token/);
    }
    expect((await post(server.url, { authorization: `Bearer ${agentToken}` })).status).toBe(200);
  });

  it('HTTP: checks Host and Origin on every loopback address (DNS rebinding, web pages)', async () => {
    for (const host of ['127.0.0.1', '127.0.0.2']) {
      const server = await serveHttp({ host, port: 0, addr: dev.addr, env: {}, cwd: work });
      servers.push(server);
      const port = new URL(server.url).port;
      const auth = { authorization: `Bearer ${agentToken}` };
      // fetch sets Host from the URL; a rebinding attack arrives with the attacker's name.
      const rebound = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(
          server.url,
          {
            method: 'POST',
            headers: {
              ...auth,
              host: `evil.example:${port}`,
              'content-type': 'application/json',
              accept: 'application/json, text/event-stream',
            },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.once('error', reject);
        req.end(initialize);
      });
      expect(rebound).toBe(403);
      const fromPage = await post(server.url, { ...auth, origin: 'https://evil.example' });
      expect(fromPage.status).toBe(403);
      expect(await fromPage.text()).toMatch(/Origin .*evil\.example.* is not allowed/);
      expect((await post(server.url, auth)).status).toBe(200);
    }
  });

  it('HTTP: refuses to listen beyond loopback without TLS', async () => {
    await expect(serveHttp({ host: '0.0.0.0', port: 0, env: {}, cwd: work })).rejects.toThrow(
      /without TLS would send agent tokens in clear text/,
    );
  });

  it('HTTP: offers run_with_credentials only with --allow-run-on-host, and serves TLS', async () => {
    const cert = join(work, 'cert.pem');
    const key = join(work, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const server = await serveHttp({
      host: '127.0.0.1',
      port: 0,
      addr: dev.addr,
      env: { PATH: process.env.PATH ?? '' },
      cwd: work,
      allowRunOnHost: true,
      tls: { certFile: cert, keyFile: key },
    });
    servers.push(server);
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const { readFileSync } = await import('node:fs');
    const ca = readFileSync(cert);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        server.url,
        {
          method: 'POST',
          ca,
          headers: {
            authorization: `Bearer ${agentToken}`,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
          },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.once('error', reject);
      req.end(initialize);
    });
    expect(status).toBe(200);

    const plain = await serveHttp({
      host: '127.0.0.1',
      port: 0,
      addr: dev.addr,
      env: { PATH: process.env.PATH ?? '' },
      cwd: work,
      allowRunOnHost: true,
    });
    servers.push(plain);
    const client = new Client({ name: 'test', version: '1' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(plain.url), {
        requestInit: { headers: { authorization: `Bearer ${agentToken}` } },
      }),
    );
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names).toContain('run_with_credentials');
    const ran = (await client.callTool({
      name: 'run_with_credentials',
      arguments: { command: 'echo "$HARD_KEY"', credentials: [{ credential: 'hard-key' }] },
    })) as { content: { text: string }[] };
    expect(JSON.parse(ran.content[0]!.text).stdout).toBe('[REDACTED:HARD_KEY]\n');
    await client.close();
  });
});
