/**
 * Injector benchmark: `npx tsx test/bench/injector.ts`. Bounded work only (two shared cores):
 *
 * - webhook handler latency: AdmissionReviews over HTTPS (keep-alive) to the real handler;
 * - revocation → wipe: a lease revoked through the API until its file is gone;
 * - expiry → wipe: leases that may not be renewed or replaced, from `expiresAt` to the wipe;
 * - agent RSS: `vault agent` as a process keeping 10 files renewing every few seconds.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { agentFile } from '../../src/agent/config.js';
import { createFileSink } from '../../src/agent/file-sink.js';
import { createLeaseLoop } from '../../src/agent/lease-loop.js';
import { systemClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { Vault } from '../../src/sdk/index.js';
import { applyRotation, caBundle, defaultRotationPolicy } from '../../src/webhook/certs.js';
import { agentNodeOptions, defaultMutateConfig } from '../../src/webhook/mutate.js';
import { startWebhookServer } from '../../src/webhook/server.js';
import { repoRoot, startVaultDev } from '../support/vault-dev.js';
import { loadPod } from '../webhook/support.js';

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
};
const ms = (n: number) => `${n.toFixed(2)} ms`;
const sleep = (t: number) => new Promise((resolve) => setTimeout(resolve, t));

async function webhookLatency(count: number) {
  const certs = await applyRotation(
    undefined,
    'create',
    defaultRotationPolicy({ ipAddresses: ['127.0.0.1'] }),
    new Date(),
  );
  const server = await startWebhookServer({
    logger: silentLogger,
    registry: new Registry(),
    certificate: certs.serving,
    config: defaultMutateConfig({ agentImage: 'vault:bench', vaultAddr: 'http://vault:8200' }),
  });
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: caBundle(certs, new Date()) });
  const body = JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'u',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      namespace: 'payments',
      operation: 'CREATE',
      object: loadPod('full'),
    },
  });
  const once = () =>
    new Promise<number>((resolve, reject) => {
      const start = process.hrtime.bigint();
      const req = request(
        { host: '127.0.0.1', port: server.port, method: 'POST', path: '/mutate', agent },
        (res) => {
          res.resume();
          res.on('end', () => resolve(Number(process.hrtime.bigint() - start) / 1e6));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  for (let i = 0; i < 50; i++) await once();
  const samples: number[] = [];
  for (let i = 0; i < count; i++) samples.push(await once());
  agent.destroy();
  await server.close();
  return { p50: quantile(samples, 0.5), p99: quantile(samples, 0.99), count };
}

async function main() {
  const results: string[] = [];
  const hook = await webhookLatency(2_000);
  results.push(
    `| webhook handler (HTTPS, ${hook.count} reviews, 3-file pod) | p50 ${ms(hook.p50)}, p99 ${ms(hook.p99)} | p99 ≤ 10 ms |`,
  );

  const dev = await startVaultDev();
  const dir = mkdtempSync(join(tmpdir(), 'vault-bench-injector-'));
  try {
    const admin = await Vault.connect({ addr: dev.addr, token: dev.token, tenant: dev.tenant });
    await admin.credentials.create({ name: 'bench', type: 'generic', value: 'bench-value' });
    const api = (vault: Vault) => ({
      create: (input: Parameters<Vault['leases']['create']>[0]) => vault.leases.create(input),
      read: (id: string) => vault.leases.read(id),
      renew: (id: string) => vault.leases.renew(id),
      revoke: (id: string) => vault.leases.revoke(id),
      events: (signal: AbortSignal) => vault.leases.events({ signal }),
    });
    const loopIn = (
      vault: Vault,
      sub: string,
      files: { name: string; credential: string; ttl?: string; maxTtl?: string }[],
    ) => {
      const directory = join(dir, sub);
      mkdirSync(directory);
      const loop = createLeaseLoop({
        files: files.map((f) => agentFile.parse(f)),
        sink: createFileSink(directory),
        api: api(vault),
        clock: systemClock,
        logger: silentLogger,
        registry: new Registry(),
      });
      loop.start();
      return { loop, directory };
    };
    const waitGone = async (path: string, limitMs: number) => {
      const deadline = Date.now() + limitMs;
      while (existsSync(path)) {
        if (Date.now() > deadline) throw new Error(`${path} was not wiped`);
        await sleep(1);
      }
      return Date.now();
    };

    // Revocation → wipe.
    const files = Array.from({ length: 20 }, (_, i) => ({ name: `r${i}`, credential: 'bench', ttl: '1h' }));
    const revoked = loopIn(admin, 'revoke', files);
    await revoked.loop.allWritten;
    await sleep(500);
    const revokeSamples: number[] = [];
    for (const file of files) {
      const id = revoked.loop.leaseIds()[file.name]!;
      const start = Date.now();
      await admin.leases.revoke(id);
      revokeSamples.push((await waitGone(join(revoked.directory, file.name), 10_000)) - start);
    }
    await revoked.loop.stop();
    results.push(
      `| revocation → file wiped (${revokeSamples.length} leases) | p50 ${ms(quantile(revokeSamples, 0.5))}, p99 ${ms(quantile(revokeSamples, 0.99))} | p99 ≤ 1 s |`,
    );

    // Expiry → wipe: the policy stops allowing new leases, so each lease runs out.
    await admin.policies.put('bench-expiry', { rules: [{ credentials: ['bench'], actions: ['lease'] }] });
    const token = await admin.tokens.create({
      identity: { type: 'agent', name: 'bench' },
      policies: ['bench-expiry'],
      ttl: '1h',
    });
    const agentVault = await Vault.connect({ addr: dev.addr, token: token.token, tenant: dev.tenant });
    const expiring = Array.from({ length: 10 }, (_, i) => ({
      name: `e${i}`,
      credential: 'bench',
      ttl: '3s',
      maxTtl: '3s',
    }));
    const expired = loopIn(agentVault, 'expire', expiring);
    await expired.loop.allWritten;
    await admin.policies.put('bench-expiry', { rules: [{ credentials: ['none-*'], actions: ['lease'] }] });
    const leases = await Promise.all(expiring.map((f) => admin.leases.get(expired.loop.leaseIds()[f.name]!)));
    const expirySamples = await Promise.all(
      expiring.map(
        async (f, i) =>
          (await waitGone(join(expired.directory, f.name), 15_000)) - leases[i]!.expiresAt.getTime(),
      ),
    );
    await expired.loop.stop();
    results.push(
      `| expiry → file wiped (${expirySamples.length} leases) | p50 ${ms(quantile(expirySamples, 0.5))}, p99 ${ms(quantile(expirySamples, 0.99))} | p99 ≤ 250 ms |`,
    );

    // Agent RSS: the real command, compiled (as in the image) and with the Node options the
    // webhook sets, 10 files renewing every ~4 s.
    const { build } = await import('esbuild');
    const bundle = join(repoRoot, 'node_modules/.cache/vault-bench/agent.mjs');
    await build({
      stdin: {
        contents:
          "import { Command } from 'commander'; import { register } from './src/cli/agent.ts'; const p = new Command('vault'); register(p); await p.parseAsync(process.argv);",
        resolveDir: repoRoot,
        loader: 'ts',
      },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      outfile: bundle,
      logLevel: 'error',
    });
    const agentDir = join(dir, 'agent');
    mkdirSync(agentDir);
    const config = {
      directory: agentDir,
      healthPort: 0,
      files: Array.from({ length: 10 }, (_, i) => ({ name: `f${i}`, credential: 'bench', ttl: '6s' })),
    };
    const child = spawn(
      process.execPath,
      [
        ...agentNodeOptions.split(' '),
        bundle,
        'agent',
        '--config',
        JSON.stringify(config),
        '--health-host',
        '127.0.0.1',
      ],
      {
        env: {
          ...process.env,
          VAULT_ADDR: dev.addr,
          VAULT_TOKEN: dev.token,
          VAULT_TENANT: dev.tenant,
          VAULT_LOG_LEVEL: 'warn',
        },
        stdio: 'ignore',
      },
    );
    await sleep(20_000);
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
    const present = config.files.filter((f) => existsSync(join(agentDir, f.name))).length;
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    results.push(
      `| agent RSS, 10 files renewing (after 20 s, compiled, webhook's Node options) | ${(rssKb / 1024).toFixed(1)} MiB (${present}/10 files present) | ≤ 64 MiB |`,
    );
  } finally {
    await dev.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(['| measure | result | goal |', '|---|---|---|', ...results].join('\n'));
}

await main();
process.exit(0);
