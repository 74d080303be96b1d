/**
 * Operator benchmark on a real control plane: N VaultLease objects (default 1,000) applied at
 * once; prints the time until all are Active, the API writes per object (the object itself,
 * and events), and the writes during an idle resync.
 *
 *   npx tsx test/bench/operator.ts [--count 1000] [--resync 20s]
 */
import { parseArgs } from 'node:util';
import { resourceTypes } from '../../src/k8s/api-client.js';
import { durationMs } from '../../src/lib/duration.js';
import type { Operator } from '../../src/operator/manager.js';
import { eventually, setupOperatorEnv } from '../operator/support.js';

const { values } = parseArgs({
  options: { count: { type: 'string', default: '1000' }, resync: { type: 'string', default: '20s' } },
});
const count = Number(values.count);
const resyncMs = durationMs(values.resync ?? '20s');

const env = await setupOperatorEnv();
let operator: Operator | undefined;
try {
  operator = await env.startOperator({ resyncMs, leaderElection: { enabled: false } });
  const ns = 'bench';
  await env.cp.createNamespace(ns);
  const credential = `apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: db}
spec: {type: password, source: {generate: {}}, access: {serviceAccounts: [app], maxTtl: 2h}}`;
  const applied = await env.cp.kubectl(['apply', '-n', ns, '-f', '-'], { input: credential });
  if (applied.code !== 0) throw new Error(applied.stderr);
  await eventually('the credential', async () => {
    const c = await env.admin.get<{ status?: { phase?: string } }>(resourceTypes.vaultCredentials, ns, 'db');
    return c.status?.phase === 'Ready' ? true : undefined;
  });
  await operator.idle();

  const writes = () => {
    const counts = { objects: 0, events: 0 };
    // biome-ignore lint/suspicious/noExplicitAny: prom-client's metric value shape
    const metric = (operator as Operator).metrics.apiRequests as any;
    for (const v of metric.hashMap ? Object.values(metric.hashMap) : []) {
      const { labels, value } = v as { labels: Record<string, string>; value: number };
      if (labels.verb === 'get' || labels.verb === 'list' || labels.verb === 'watch') continue;
      if (labels.resource === 'vaultleases') counts.objects += value;
      if (labels.resource === 'events') counts.events += value;
    }
    return counts;
  };
  const before = writes();
  const manifest = Array.from(
    { length: count },
    (_, i) => `---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: lease-${i}}
spec: {credentialRef: {name: db}, serviceAccountName: app, ttl: 1h}`,
  ).join('\n');
  const started = Date.now();
  const created = await env.cp.kubectl(['create', '-n', ns, '-f', '-'], {
    input: manifest,
    timeoutMs: 600_000,
  });
  if (created.code !== 0) throw new Error(created.stderr.slice(0, 500));
  const appliedMs = Date.now() - started;
  await eventually(
    `all ${count} Active`,
    async () => {
      const list = await env.admin.list<{ status?: { phase?: string } }>(resourceTypes.vaultLeases, {
        namespace: ns,
      });
      return list.items.filter((l) => l.status?.phase === 'Active').length === count ? true : undefined;
    },
    600_000,
  );
  const activeMs = Date.now() - started;
  await operator.idle();
  const after = writes();
  const vaultLeases = await env.core.leases.list(
    {
      principal: { tenant: ns, identity: { type: 'human', name: 'bench' }, policies: [], system: true },
      tenant: ns,
      requestId: 'bench',
    },
    { limit: 1000, state: 'active' },
  );

  // An idle resync: every object is reconciled again; nothing may be written.
  const idleBefore = writes();
  await new Promise((resolve) => setTimeout(resolve, resyncMs + 2_000));
  await operator.idle();
  const idleAfter = writes();

  const perObject = (after.objects - before.objects) / count;
  const eventsPerObject = (after.events - before.events) / count;
  console.log(
    JSON.stringify(
      {
        leases: count,
        kubectlCreateSeconds: +(appliedMs / 1000).toFixed(1),
        allActiveSeconds: +(activeMs / 1000).toFixed(1),
        writesPerObject: +perObject.toFixed(2),
        eventsPerObject: +eventsPerObject.toFixed(2),
        leasesInVault: vaultLeases.leases.length,
        idleResyncWrites: idleAfter.objects - idleBefore.objects + (idleAfter.events - idleBefore.events),
      },
      null,
      2,
    ),
  );
} finally {
  await operator?.stop();
  await env.close();
}
