/**
 * Injector benchmark: `npx tsx test/bench/injector.ts`. Bounded work only (two shared cores):
 *
 * - webhook handler latency: AdmissionReviews over HTTPS (keep-alive) to the real handler;
 * - revocation → wipe: a lease revoked through the API until its file is gone;
 * - expiry → wipe: leases that may not be renewed or replaced, from `expiresAt` to the wipe;
 * - pod creation through a real kube-apiserver, labelled pods (through `vault webhook`, a
 *   process) against unlabelled ones (which never reach it), interleaved;
 * - agent RSS: `vault agent` as a process keeping 10 files renewing every few seconds, both as
 *   the agent command alone and through the whole compiled CLI (what the image runs).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { agentFile } from '../../src/agent/config.js';
import { createFileSink } from '../../src/agent/file-sink.js';
import { createLeaseLoop, leaseApi } from '../../src/agent/lease-loop.js';
import { systemClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { Vault } from '../../src/sdk/index.js';
import { applyRotation, caBundle, defaultRotationPolicy } from '../../src/webhook/certs.js';
import { agentNodeOptions, defaultMutateConfig } from '../../src/webhook/mutate.js';
import { startWebhookServer } from '../../src/webhook/server.js';
import { startControlPlane } from '../support/control-plane.js';
import { repoRoot, startVaultDev } from '../support/vault-dev.js';
import { startWebhookProcess } from '../support/webhook-process.js';
import { loadPod } from '../webhook/support.js';
import { benchCache, bundleAgent } from './agent-bundle.js';

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

/**
 * Pod creation through the API server with and without the webhook: `vault webhook` runs as a
 * process and installs its configuration (clientConfig.url on 127.0.0.1); labelled and
 * unlabelled pods are created alternately, so both see the same machine load.
 */
async function podCreateLatency(count: number) {
  const { CoreV1Api } = await import('@kubernetes/client-node');
  const cp = await startControlPlane();
  const webhook = await startWebhookProcess({ kubeconfigPath: cp.kubeconfigPath, agentImage: 'vault:bench' });
  try {
    const ns = 'bench';
    await cp.createNamespace(ns);
    await cp.createNamespace('vault-system');
    const core = cp.kubeConfig().makeApiClient(CoreV1Api);
    const pod = (name: string, labelled: boolean): V1Pod => ({
      metadata: {
        name,
        labels: { app: 'bench', ...(labelled ? { 'vault.ghoststack.io/inject': 'true' } : {}) },
        annotations: {
          'vault.ghoststack.io/credential-db.env': 'payments-db-url',
          'vault.ghoststack.io/format-db.env': 'env',
          'vault.ghoststack.io/credential-stripe.json': 'stripe-api-key',
          'vault.ghoststack.io/format-stripe.json': 'json',
          'vault.ghoststack.io/credential-tls.key': 'payments-tls',
        },
      },
      spec: {
        securityContext: { runAsUser: 1000 },
        containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
      },
    });
    // The API server picks the configuration up from its informer: wait until it calls the webhook.
    const deadline = Date.now() + 90_000;
    let sample: V1Pod;
    for (;;) {
      sample = await core.createNamespacedPod({ namespace: ns, dryRun: 'All', body: pod('probe', true) });
      if (sample.metadata?.annotations?.['vault.ghoststack.io/status'] === 'injected') break;
      if (Date.now() > deadline) throw new Error('the webhook configuration did not take effect');
      await sleep(200);
    }
    // A third kind splits the cost: the injected pod as the webhook returns it, created without
    // the label (so without a webhook call): what the bigger object alone costs.
    const preInjected = (name: string): V1Pod => {
      const copy = structuredClone(sample);
      copy.metadata = { name, labels: { app: 'bench' }, annotations: copy.metadata?.annotations };
      delete copy.status;
      return copy;
    };
    const kinds = {
      with: (name: string) => pod(name, true),
      without: (name: string) => pod(name, false),
      preInjected,
    };
    const samples: Record<keyof typeof kinds, number[]> = { with: [], without: [], preInjected: [] };
    const order = Object.keys(kinds) as (keyof typeof kinds)[];
    for (let i = -20; i < count; i++) {
      // Rotate which kind goes first, so that none always follows another; the first 20 warm up.
      for (let k = 0; k < order.length; k++) {
        const kind = order[(i + 20 + k) % order.length]!;
        const body = kinds[kind](`${kind.toLowerCase()}-${i + 20}`);
        const start = process.hrtime.bigint();
        const created = await core.createNamespacedPod({ namespace: ns, body });
        const elapsed = Number(process.hrtime.bigint() - start) / 1e6;
        const injected = created.metadata?.annotations?.['vault.ghoststack.io/status'] === 'injected';
        if (injected !== (kind !== 'without'))
          throw new Error(`pod ${body.metadata?.name}: injected=${injected}`);
        if (i >= 0) samples[kind].push(elapsed);
      }
    }
    const summary = (values: number[]) => ({ p50: quantile(values, 0.5), p99: quantile(values, 0.99) });
    return {
      count,
      with: summary(samples.with),
      without: summary(samples.without),
      preInjected: summary(samples.preInjected),
    };
  } finally {
    await webhook.stop();
    await cp.stop();
  }
}

/** Resident memory of a process after `settleMs`, in MiB (Linux /proc). */
const rssMiB = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN) / 1024;

async function main() {
  const results: string[] = [];
  const hook = await webhookLatency(2_000);
  results.push(
    `| webhook handler (HTTPS, ${hook.count} reviews, 3-file pod) | p50 ${ms(hook.p50)}, p99 ${ms(hook.p99)} | p99 ≤ 10 ms |`,
  );

  const pods = await podCreateLatency(200);
  const ratio = (key: 'p50' | 'p99') => (pods.with[key] / pods.without[key]).toFixed(2);
  results.push(
    `| pod create through the API server (${pods.count} pods of each kind, interleaved) | unlabelled p50 ${ms(pods.without.p50)}, p99 ${ms(pods.without.p99)}; labelled (through the webhook) p50 ${ms(pods.with.p50)}, p99 ${ms(pods.with.p99)}; **ratio p50 ${ratio('p50')}, p99 ${ratio('p99')}**; the injected pod created without the webhook p50 ${ms(pods.preInjected.p50)}, p99 ${ms(pods.preInjected.p99)} | ratio ≤ 1.2 |`,
  );

  const dev = await startVaultDev();
  const dir = mkdtempSync(join(tmpdir(), 'vault-bench-injector-'));
  try {
    const admin = await Vault.connect({ addr: dev.addr, token: dev.token, tenant: dev.tenant });
    await admin.credentials.create({ name: 'bench', type: 'generic', value: 'bench-value' });
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
        api: leaseApi(() => vault),
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

    // Agent RSS with the Node options the webhook sets, 10 files renewing every ~4 s: the agent
    // command alone (bundled), and the whole CLI compiled by tsc as the image runs it
    // (`node dist/cli/main.js agent`), built into a cache directory, never into ./dist.
    const bundle = await bundleAgent();
    const compiled = join(benchCache, 'dist');
    rmSync(compiled, { recursive: true, force: true });
    execFileSync(
      process.execPath,
      [
        join(repoRoot, 'node_modules/typescript/bin/tsc'),
        '-p',
        join(repoRoot, 'tsconfig.build.json'),
        '--outDir',
        compiled,
        '--declaration',
        'false',
        '--sourceMap',
        'false',
      ],
      { cwd: repoRoot, stdio: 'inherit' },
    );
    const agentRss = async (entry: string, name: string) => {
      const agentDir = join(dir, name);
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
          entry,
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
            NODE_OPTIONS: '',
          },
          stdio: 'ignore',
        },
      );
      const samples: number[] = [];
      try {
        for (let second = 5; second <= 30; second += 5) {
          await sleep(5_000);
          if (child.exitCode !== null) throw new Error(`the agent (${name}) exited with ${child.exitCode}`);
          if (second >= 15) samples.push(rssMiB(child.pid!));
        }
      } finally {
        child.kill('SIGTERM');
        await new Promise((resolve) =>
          child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve),
        );
      }
      const present = config.files.filter((f) => existsSync(join(agentDir, f.name))).length;
      return { max: Math.max(...samples), present };
    };
    const alone = await agentRss(bundle, 'agent-alone');
    const whole = await agentRss(join(compiled, 'cli/main.js'), 'agent-cli');
    results.push(
      `| agent RSS, 10 files renewing (15–30 s, webhook's Node options): the agent command alone | max ${alone.max.toFixed(1)} MiB | ≤ 64 MiB |`,
      `| agent RSS, the same through the compiled CLI (\`node dist/cli/main.js agent\`, as in the image) | max ${whole.max.toFixed(1)} MiB | ≤ 64 MiB |`,
    );
  } finally {
    await dev.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(['| measure | result | goal |', '|---|---|---|', ...results].join('\n'));
}

await main();
process.exit(0);
