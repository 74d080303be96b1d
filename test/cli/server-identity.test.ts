/**
 * Which server `VAULT_ADDR` reaches, as the CLI and the SDK tell it: a real `vault server`
 * serving HTTPS with a certificate from a private CA (trusted through VAULT_CACERT, or refused
 * with a message naming the certificate problem), and other products listening on the address
 * (an HTTP server answering like HashiCorp Vault, an HTML page, some other JSON API).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateRootKeyFile } from '../../src/crypto/root-key.js';
import { Vault, VaultConnectionError } from '../../src/sdk/index.js';
import { issueCa, issueServing } from '../../src/webhook/certs.js';
import { type Bootstrap, bootstrap, type ServerProcess, startServer } from '../crash/vault-server.js';
import { repoRoot, vaultBin } from '../support/vault-dev.js';

const execFileAsync = promisify(execFile);
let base: string;
let server: ServerProcess;
let auth: Bootstrap;
let caFile: string;
let caPem: string;
const fakes: Server[] = [];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI with a clean environment: no NODE_EXTRA_CA_CERTS, no stored login. */
async function vault(args: string[], env: Record<string, string>): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [vaultBin, ...args], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', HOME: base, XDG_CONFIG_HOME: join(base, 'config'), ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

async function fake(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const fakeServer = createServer(handler);
  fakes.push(fakeServer);
  await new Promise<void>((resolve) => fakeServer.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(fakeServer.address() as { port: number }).port}`;
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'vault-server-identity-'));
  const rootKeyFile = join(base, 'root.key');
  await generateRootKeyFile(rootKeyFile);
  const dataDir = join(base, 'data');
  auth = await bootstrap({ store: 'embedded', dataDir, rootKeyFile }, 'tls');
  const ca = await issueCa(30);
  const serving = await issueServing(ca, {
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    servingValidityDays: 30,
  });
  caPem = ca.certPem;
  caFile = join(base, 'ca.crt');
  writeFileSync(caFile, ca.certPem);
  writeFileSync(join(base, 'tls.crt'), serving.certPem);
  writeFileSync(join(base, 'tls.key'), serving.keyPem, { mode: 0o600 });
  server = await startServer([
    '--store=embedded',
    `--data-dir=${dataDir}`,
    `--root-key-file=${rootKeyFile}`,
    '--audit-log=none',
    `--tls-cert-file=${join(base, 'tls.crt')}`,
    `--tls-key-file=${join(base, 'tls.key')}`,
  ]);
}, 120_000);

afterAll(async () => {
  for (const fakeServer of fakes) fakeServer.close();
  await server?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('a private CA', () => {
  const env = () => ({ VAULT_ADDR: server.url, VAULT_TOKEN: auth.token, VAULT_TENANT: 'tls' });

  it('without VAULT_CACERT the CLI names the certificate problem and how to fix it (exit 8)', async () => {
    const run = await vault(['credentials', 'list'], env());
    expect(run.code).toBe(8);
    expect(run.stderr).toContain(
      'certificate signed by an unknown authority: set VAULT_CACERT to the CA file',
    );
    expect(run.stderr).not.toContain('is the Vault server running there');
    expect(run.stderr).toMatch(/hint: for a private CA, set VAULT_CACERT/);
  }, 60_000);

  it('with VAULT_CACERT the CLI trusts the server', async () => {
    const run = await vault(['credentials', 'list', '--json'], { ...env(), VAULT_CACERT: caFile });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout).map((c: { name: string }) => c.name)).toEqual([auth.credentialName]);
  }, 60_000);

  it('a VAULT_CACERT that is missing or not PEM is one clear line', async () => {
    const missing = await vault(['whoami'], { ...env(), VAULT_CACERT: join(base, 'nope.crt') });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain(
      `cannot read the CA file ${join(base, 'nope.crt')} (VAULT_CACERT): no such file`,
    );
    writeFileSync(join(base, 'junk.crt'), 'not a certificate');
    const junk = await vault(['whoami'], { ...env(), VAULT_CACERT: join(base, 'junk.crt') });
    expect(junk.stderr).toContain('(VAULT_CACERT) is not PEM');
  }, 60_000);

  it('http:// to an HTTPS server says to use https', async () => {
    const run = await vault(['whoami'], { ...env(), VAULT_ADDR: server.url.replace('https:', 'http:') });
    expect(run.code).toBe(8);
    expect(run.stderr).toMatch(/if it serves HTTPS, use an https:\/\/ VAULT_ADDR/);
  }, 60_000);

  it('the SDK: VAULT_CACERT or the caCert option trusts the CA; without it, a tls VaultConnectionError', async () => {
    const saved = { cacert: process.env.VAULT_CACERT, extra: process.env.NODE_EXTRA_CA_CERTS };
    delete process.env.VAULT_CACERT;
    try {
      const refused = await Vault.connect({ addr: server.url, token: auth.token }).catch(
        (err: unknown) => err,
      );
      expect(refused).toBeInstanceOf(VaultConnectionError);
      expect((refused as VaultConnectionError).reason).toBe('tls');
      expect((refused as Error).message).toContain('set VAULT_CACERT');
      const withOption = await Vault.connect({ addr: server.url, token: auth.token, caCert: caPem });
      expect(withOption.self.identity.name).toBe('crash-test');
      process.env.VAULT_CACERT = caFile;
      const withEnv = await Vault.connect({ addr: server.url, token: auth.token, tenant: 'tls' });
      expect((await withEnv.credentials.list()).map((c) => c.name)).toEqual([auth.credentialName]);
    } finally {
      if (saved.cacert === undefined) delete process.env.VAULT_CACERT;
      else process.env.VAULT_CACERT = saved.cacert;
    }
  }, 60_000);
});

describe('VAULT_ADDR answers, but it is not this Vault', () => {
  it('HashiCorp Vault is named, with its version, and the exit code is 8', async () => {
    const addr = await fake((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url?.startsWith('/v1/sys/health')) {
        res.end(
          JSON.stringify({
            initialized: true,
            sealed: false,
            standby: false,
            version: '1.15.2',
            cluster_name: 'x',
          }),
        );
        return;
      }
      res.statusCode = 403;
      res.end(JSON.stringify({ errors: ['permission denied'] }));
    });
    const run = await vault(['credentials', 'list'], { VAULT_ADDR: addr, VAULT_TOKEN: 'hvs.abc' });
    expect(run.code).toBe(8);
    expect(run.stderr).toContain(`${addr} answered what looks like HashiCorp Vault 1.15.2`);
    expect(run.stderr).toContain('VAULT_ADDR points at another server');
    expect(run.stderr).not.toMatch(/token|permission denied/i);
  }, 60_000);

  it('an HTML page or another JSON API is "not the API of this Vault", never a 4xx of ours', async () => {
    const html = await fake((_req, res) => {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end('<!doctype html><title>Welcome</title>');
    });
    const json = await fake((_req, res) => {
      res.statusCode = 404;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ message: 'Not Found' }));
    });
    for (const [addr, what] of [
      [html, 'HTTP 200 (text/html)'],
      [json, 'HTTP 404 (application/json)'],
    ] as const) {
      const run = await vault(['whoami'], { VAULT_ADDR: addr, VAULT_TOKEN: 'vlt_x' });
      expect(run.code).toBe(8);
      expect(run.stderr).toContain(`${addr} answered ${what}, not the API of this Vault`);
      const sdk = await Vault.connect({ addr, token: 'vlt_x' }).catch((err: unknown) => err);
      expect((sdk as VaultConnectionError).reason).toBe('not-vault');
    }
  }, 60_000);

  it('nothing listening is still "is the Vault server running there?"', async () => {
    const gone = await fake(() => {});
    fakes.pop()!.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const run = await vault(['whoami'], { VAULT_ADDR: gone, VAULT_TOKEN: 'vlt_x' });
    expect(run.code).toBe(8);
    expect(run.stderr).toContain('connection refused): is the Vault server running there?');
  }, 60_000);
});
