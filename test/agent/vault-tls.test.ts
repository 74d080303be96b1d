/**
 * `vault agent` against a real `vault server` serving HTTPS with a certificate from a private
 * CA: it trusts the server with that CA (a file, or the PEM the webhook puts in the env),
 * refuses it without the CA or with another CA, and says in one line what is wrong with a
 * CA file that is missing or not PEM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateRootKeyFile } from '../../src/crypto/root-key.js';
import { issueCa, issueServing } from '../../src/webhook/certs.js';
import { type Bootstrap, bootstrap } from '../crash/vault-server.js';
import { freePort } from '../support/etcd.js';
import { startHangingProxy } from '../support/hanging-proxy.js';
import { repoRoot, vaultBin } from '../support/vault-dev.js';

const tenant = 'tls';
let base: string;
let server: ChildProcess | undefined;
let serverOutput = '';
let url: string;
let auth: Bootstrap;
let caFile: string;
let caPem: string;
let otherCaFile: string;
let run = 0;

interface AgentRun {
  code: number | null;
  output: string;
  directory: string;
}

/** Runs `vault agent --once` with a clean environment (no NODE_EXTRA_CA_CERTS) and waits for it to exit. */
function agentOnce(args: string[], env: Record<string, string>): Promise<AgentRun> {
  const directory = join(base, `secrets-${run++}`);
  mkdirSync(directory);
  const config = { files: [{ name: 'db-password', credential: auth.credentialName, ttl: '5m' }], directory };
  const child = spawn(
    process.execPath,
    [
      vaultBin,
      'agent',
      '--once',
      '--config',
      JSON.stringify(config),
      '--health-host',
      '127.0.0.1',
      '--health-port',
      '0',
      ...args,
    ],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '',
        HOME: base,
        VAULT_TENANT: tenant,
        VAULT_TOKEN: auth.token,
        ...env,
      },
    },
  );
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, directory });
    }),
  );
}

const fatalLines = (output: string) =>
  output
    .split('\n')
    .filter((line) => line.includes('"level":60'))
    .map((line) => (JSON.parse(line) as { msg: string }).msg);

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'vault-agent-tls-'));
  const rootKeyFile = join(base, 'root.key');
  await generateRootKeyFile(rootKeyFile);
  const dataDir = join(base, 'data');
  auth = await bootstrap({ store: 'embedded', dataDir, rootKeyFile }, tenant);

  const ca = await issueCa(30);
  const serving = await issueServing(ca, {
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    servingValidityDays: 30,
  });
  caPem = ca.certPem;
  caFile = join(base, 'ca.crt');
  writeFileSync(caFile, ca.certPem);
  otherCaFile = join(base, 'other-ca.crt');
  writeFileSync(otherCaFile, (await issueCa(30)).certPem);
  writeFileSync(join(base, 'tls.crt'), serving.certPem);
  writeFileSync(join(base, 'tls.key'), serving.keyPem, { mode: 0o600 });

  server = spawn(
    process.execPath,
    [
      vaultBin,
      'server',
      '--store',
      'embedded',
      '--data-dir',
      dataDir,
      '--root-key-file',
      rootKeyFile,
      '--audit-log',
      'none',
      '--tls-cert-file',
      join(base, 'tls.crt'),
      '--tls-key-file',
      join(base, 'tls.key'),
      '--listen',
      '127.0.0.1:0',
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', HOME: base } },
  );
  server.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    serverOutput += chunk;
  });
  url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`vault server did not start:\n${serverOutput}`)), 60_000);
    server!.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      serverOutput += chunk;
      const found = /"url":"(https:\/\/127\.0\.0\.1:\d+)"/.exec(serverOutput)?.[1];
      if (found) {
        clearTimeout(timer);
        resolve(found);
      }
    });
    server!.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`vault server exited (${code}) while starting:\n${serverOutput}`));
    });
  });
}, 120_000);

afterAll(async () => {
  if (server && server.exitCode === null && server.signalCode === null) {
    const exited = new Promise((resolve) => server!.once('exit', resolve));
    server.kill('SIGTERM');
    const timer = setTimeout(() => server?.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('vault agent over HTTPS', () => {
  it('trusts the server with --vault-ca-file and writes the file', async () => {
    const result = await agentOnce(['--vault-ca-file', caFile], { VAULT_ADDR: url });
    expect(result.code, result.output).toBe(0);
    expect(readFileSync(join(result.directory, 'db-password'), 'utf8')).toBe('crash-test-value-0f3c');
  }, 60_000);

  it('trusts the server with $VAULT_CACERT', async () => {
    const result = await agentOnce([], { VAULT_ADDR: url, VAULT_CACERT: caFile });
    expect(result.code, result.output).toBe(0);
    expect(readFileSync(join(result.directory, 'db-password'), 'utf8')).toBe('crash-test-value-0f3c');
  }, 60_000);

  it('trusts the server with the PEM itself in $VAULT_CACERT_PEM, as the webhook sets it', async () => {
    const result = await agentOnce([], { VAULT_ADDR: url, VAULT_CACERT_PEM: caPem });
    expect(result.code, result.output).toBe(0);
    expect(readFileSync(join(result.directory, 'db-password'), 'utf8')).toBe('crash-test-value-0f3c');
  }, 60_000);

  it('waits for a server that is not listening yet, then writes the file', async () => {
    // The address answers nothing for a few seconds (connections refused), as while the API
    // servers restart; then a proxy to the real server comes up on it.
    const port = await freePort();
    const running = agentOnce(['--vault-ca-file', caFile], { VAULT_ADDR: `https://127.0.0.1:${port}` });
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const { port: serverPort } = new URL(url);
    const proxy = await startHangingProxy({ host: '127.0.0.1', port: Number(serverPort) }, { port });
    try {
      const result = await running;
      expect(result.code, result.output).toBe(0);
      expect(result.output).toContain('cannot log in yet; trying again');
      expect(readFileSync(join(result.directory, 'db-password'), 'utf8')).toBe('crash-test-value-0f3c');
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('refuses the server without its CA, and writes nothing', async () => {
    const result = await agentOnce([], { VAULT_ADDR: url });
    expect(result.code, result.output).toBe(1);
    const [message, ...more] = fatalLines(result.output);
    expect(more).toEqual([]);
    expect(message).toContain(`cannot log in to Vault at ${url}`);
    expect(message).toMatch(/self-signed certificate|unable to verify|unable to get local issuer/);
    expect(message).toContain("give the API certificate's CA with --vault-ca-file or VAULT_CACERT");
    expect(() => readFileSync(join(result.directory, 'db-password'))).toThrow(/ENOENT/);
  }, 60_000);

  it('refuses the server when the CA given is another one', async () => {
    const result = await agentOnce(['--vault-ca-file', otherCaFile], { VAULT_ADDR: url });
    expect(result.code, result.output).toBe(1);
    expect(fatalLines(result.output).join('\n')).toMatch(
      /cannot log in to Vault at .*(self-signed certificate|unable to verify|unable to get local issuer)/,
    );
  }, 60_000);
});

describe('vault agent with a bad CA bundle', () => {
  it('says in one line that the CA file does not exist, and exits 2', async () => {
    const missing = join(base, 'no-such-ca.crt');
    const result = await agentOnce(['--vault-ca-file', missing], { VAULT_ADDR: url });
    expect(result.code, result.output).toBe(2);
    expect(fatalLines(result.output)).toEqual([
      `--vault-ca-file: cannot read the CA file ${missing}: no such file`,
    ]);
  }, 60_000);

  it('says in one line that the file is not PEM (a key file given by mistake), and exits 2', async () => {
    const result = await agentOnce([], { VAULT_ADDR: url, VAULT_CACERT: join(base, 'root.key') });
    expect(result.code, result.output).toBe(2);
    expect(fatalLines(result.output)).toEqual([
      `$VAULT_CACERT: the CA file ${join(base, 'root.key')} is not a PEM CA bundle: it has no "-----BEGIN CERTIFICATE-----" block`,
    ]);
  }, 60_000);

  it('names the certificate in the bundle that does not parse', async () => {
    const broken = `${caPem}-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n`;
    const result = await agentOnce([], { VAULT_ADDR: url, VAULT_CACERT_PEM: broken });
    expect(result.code, result.output).toBe(2);
    const lines = fatalLines(result.output);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\$VAULT_CACERT_PEM: certificate 2 of 2 does not parse/);
  }, 60_000);
});
