/**
 * The controller's memory, measured as it runs in the chart: `vault operator run` as its own
 * process (the compiled CLI when `npm run build` has run, as in the image), with the
 * operator's least-privilege ServiceAccount, on a real control plane, a client of the Vault API
 * (in-process here, on an embedded store) logged in with its ServiceAccount's Vault token.
 * Samples VmRSS / VmHWM from /proc at each stage:
 *
 *   1. idle, nothing to reconcile;
 *   2. after N VaultCredentials and N VaultLeases (default 200 each) are Ready/Active;
 *   3. after M MiB (default 40) of Secrets that no VaultCredential imports are created in a
 *      namespace it imports Secrets from (it must not list, watch or cache them: they are
 *      not labelled for import).
 *
 *   npm run build && npx tsx test/bench/operator-memory.ts [--count 200] [--unrelated-mib 40]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { kubernetesTokenReviewer } from '../../src/server/token-review.js';
import { eventually, repoFile, secretImportBinding } from '../operator/support.js';
import { startControlPlane } from '../support/control-plane.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '200' },
    'unrelated-mib': { type: 'string', default: '40' },
  },
});
const count = Number(values.count);
const unrelatedMib = Number(values['unrelated-mib']);

async function memoryOf(pid: number) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(status.match(new RegExp(`${field}:\\s+(\\d+) kB`))?.[1] ?? 0);
  return { rssMiB: Math.round(kib('VmRSS') / 1024), peakMiB: Math.round(kib('VmHWM') / 1024) };
}

const cp = await startControlPlane();
const dir = await mkdtemp(join(tmpdir(), 'vault-operator-memory-'));
let child: ReturnType<typeof spawn> | undefined;
let vault: TestVault | undefined;
try {
  const must = async (args: string[], input?: string) => {
    const result = await cp.kubectl(args, input ? { input } : {});
    if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  };
  await must(['apply', '-f', repoFile('crds/')]);
  await must(['wait', '--for=condition=Established', '--timeout=60s', 'crd/vaultleases.vault.ghoststack.io']);
  await cp.createNamespace('vault-system');
  await must(['apply', '-f', repoFile('deploy/rbac/operator.yaml')]);
  const other = 'unrelated';
  await cp.createNamespace(other);
  await must(secretImportBinding(other));
  const token = (
    await must(['create', 'token', 'vault-operator', '-n', 'vault-system', '--duration=2h'])
  ).trim();
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, cp.kubeConfigForToken(token).exportConfig());
  const vaultToken = join(dir, 'vault.token');
  await writeFile(
    vaultToken,
    await must([
      'create',
      'token',
      'vault-operator',
      '-n',
      'vault-system',
      '--audience=vault',
      '--duration=2h',
    ]),
    { mode: 0o600 },
  );
  vault = await startTestVault({
    kubernetes: {
      reviewer: await kubernetesTokenReviewer({ kubeconfigPath: cp.kubeconfigPath }),
      controller: 'vault-system:vault-operator',
      audience: 'vault',
      maxTokenTtlMs: 3_600_000,
    },
  });

  const compiled = existsSync(repoFile('dist/cli/main.js'));
  const entry = compiled ? [repoFile('dist/cli/main.js')] : ['--import', 'tsx', repoFile('src/cli/main.ts')];
  child = spawn(
    process.execPath,
    [
      ...entry,
      'operator',
      'run',
      '--kubeconfig',
      kubeconfig,
      '--vault-addr',
      vault.url,
      '--token-file',
      vaultToken,
      '--no-leader-elect',
      '--secret-namespaces',
      other,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, VAULT_LOG_LEVEL: 'warn' } },
  );
  const pid = child.pid ?? 0;
  const settle = () => new Promise((resolve) => setTimeout(resolve, 10_000));
  const stages: Array<{ stage: string; rssMiB: number; peakMiB: number }> = [];

  await settle();
  stages.push({ stage: 'idle', ...(await memoryOf(pid)) });

  const ns = 'load';
  await cp.createNamespace(ns);
  const objects = Array.from(
    { length: count },
    (_, i) => `---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: c-${i}}
spec: {type: password, source: {generate: {}}, access: {serviceAccounts: [app], maxTtl: 2h}}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: l-${i}}
spec: {credentialRef: {name: c-${i}}, serviceAccountName: app, ttl: 1h}`,
  ).join('\n');
  await must(['create', '-n', ns, '-f', '-'], objects);
  await eventually(
    `${count} Active VaultLeases`,
    async () => {
      const list = await cp.kubectl([
        'get',
        'vaultleases',
        '-n',
        ns,
        '-o',
        'jsonpath={.items[*].status.phase}',
      ]);
      return list.stdout.split(' ').filter((p) => p === 'Active').length === count ? true : undefined;
    },
    600_000,
  );
  await settle();
  stages.push({ stage: `${count} VaultCredentials + ${count} VaultLeases`, ...(await memoryOf(pid)) });

  const blob = randomBytes(384 * 1024).toString('base64'); // 512 KiB per Secret
  const secrets = Math.ceil((unrelatedMib * 1024) / 512);
  for (let i = 0; i < secrets; i += 10) {
    const batch = Array.from(
      { length: Math.min(10, secrets - i) },
      (_, j) => `---
apiVersion: v1
kind: Secret
metadata: {name: s-${i + j}}
data: {blob: ${blob}}`,
    ).join('\n');
    await must(['create', '-n', other, '-f', '-'], batch);
  }
  await settle();
  stages.push({ stage: `+ ${unrelatedMib} MiB of unrelated Secrets`, ...(await memoryOf(pid)) });

  process.stdout.write(`vault operator run (${compiled ? 'compiled' : 'tsx'}), node ${process.version}\n`);
  process.stdout.write('| stage | RSS (MiB) | peak RSS (MiB) |\n|---|---|---|\n');
  for (const s of stages) process.stdout.write(`| ${s.stage} | ${s.rssMiB} | ${s.peakMiB} |\n`);
} finally {
  child?.kill('SIGTERM');
  await vault?.close();
  await cp.stop();
  await rm(dir, { recursive: true, force: true });
}
