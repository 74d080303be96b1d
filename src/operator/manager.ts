/**
 * The controller: informers for VaultCredentials, VaultLeases and (in the namespaces it is
 * given, secret-caches.ts) Secrets feed a keyed work
 * queue; while this replica leads (a coordination.k8s.io Lease), workers take keys and run
 * the reconciler of their kind. Status-only updates do not requeue (they are our own
 * writes), and after each write the worker waits for the informer to deliver that
 * resourceVersion before it reconciles the object again, so a stale cache can never cause a
 * second lease to be issued.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { KubeConfig } from '@kubernetes/client-node';
import { createKubeClient, type KubeClient, type ResourceType, resourceTypes } from '../k8s/api-client.js';
import { createInformer, type Informer } from '../k8s/informer.js';
import {
  credentialPhases,
  finalizer,
  type KubeObject,
  leasePhases,
  parseVaultCredential,
  parseVaultLease,
  type VaultCredentialObject,
  type VaultCredentialSpec,
  type VaultLeaseObject,
} from '../k8s/resources.js';
import type { Clock } from '../lib/clock.js';
import { systemClock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import { fileAnnotationPrefixes, importersOf } from '../webhook/annotations.js';
import { readyCondition, sameJson, statusPatch } from './conditions.js';
import { createCredentialReconciler, type SecretLookup } from './credential-reconciler.js';
import { importedSecretRef } from './dynamic-source.js';
import { createEventRecorder } from './events.js';
import { createLeaderElector, type LeaderElector } from './leader-election.js';
import { createLeaseReconciler, type ReconcileOutcome } from './lease-reconciler.js';
import { createOperatorMetrics, type OperatorMetrics } from './metrics.js';
import { createSecretCaches, type SecretCaches } from './secret-caches.js';
import { namespaceTenant } from './tenancy.js';
import type { VaultPort } from './vault-port.js';
import { credentialRequestProblems, leaseRequestProblems } from './vault-requests.js';
import { createWorkQueue, type WorkQueue } from './work-queue.js';

export interface OperatorOptions {
  kubeConfig: KubeConfig;
  vault: VaultPort;
  /**
   * The name Vault knows this cluster by: namespaces are then tenants `<cluster>.<namespace>`.
   * Without it, each namespace is the tenant of the same name (one cluster per Vault).
   */
  cluster?: string;
  /**
   * The namespaces whose Secrets VaultCredentials may import from (`spec.source.secretRef`,
   * a dynamic engine's connection Secret): the controller lists and watches Secrets only
   * there, so it needs no Secret access anywhere else. Default none: an import elsewhere
   * fails with a condition that says which setting to change.
   */
  secretNamespaces?: readonly string[];
  clock?: Clock;
  logger?: Logger;
  metrics?: OperatorMetrics;
  /** Concurrent reconciles; default 4. */
  workers?: number;
  /** Informer resync period; default 10 min. */
  resyncMs?: number;
  leaderElection?: {
    enabled?: boolean;
    namespace?: string;
    name?: string;
    leaseDurationMs?: number;
    renewDeadlineMs?: number;
    retryPeriodMs?: number;
  };
  /** This replica's name in the leader Lease and in events; default hostname plus a random suffix. */
  identity?: string;
  /** Backoff of failing reconciles. */
  retry?: { baseDelayMs?: number; maxDelayMs?: number };
  /** How often a dynamic VaultCredential's upstream revocations are checked; default 60 s. */
  dynamicPollMs?: number;
}

export interface Operator {
  start(): Promise<void>;
  /** Stops everything; `abandon` skips releasing the leader Lease, as a crash would. */
  stop(options?: { abandon?: boolean }): Promise<void>;
  readonly isLeader: boolean;
  readonly identity: string;
  readonly metrics: OperatorMetrics;
  /** Resolves once the queue is empty and no reconcile is running (tests and the benchmark). */
  idle(): Promise<void>;
}

type Kind = 'VaultLease' | 'VaultCredential';
const keyOf = (kind: Kind, ns: string, name: string) => `${kind}/${ns}/${name}`;
const parseKey = (key: string) => {
  const [kind, ns, name] = key.split('/') as [Kind, string, string];
  return { kind, ns, name };
};
const kindOfType = (type: ResourceType): Kind | undefined =>
  type === resourceTypes.vaultLeases
    ? 'VaultLease'
    : type === resourceTypes.vaultCredentials
      ? 'VaultCredential'
      : undefined;

/** Does an update change anything a reconcile depends on (not just status)? */
const specChanged = (a: KubeObject, b: KubeObject) =>
  a.metadata.generation !== b.metadata.generation ||
  a.metadata.deletionTimestamp !== b.metadata.deletionTimestamp ||
  !sameJson(a.metadata.finalizers ?? [], b.metadata.finalizers ?? []);

export function createOperator(options: OperatorOptions): Operator {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger;
  const metrics = options.metrics ?? createOperatorMetrics();
  const identity = options.identity ?? `${hostname()}-${randomBytes(4).toString('hex')}`;
  const workers = options.workers ?? 4;
  const tenantOf = (namespace: string) => namespaceTenant(options.cluster, namespace);
  const election = {
    enabled: true,
    namespace: 'vault-system',
    name: 'vault-operator',
    ...options.leaderElection,
  };

  let client: KubeClient;
  let informers: {
    leases: Informer<KubeObject>;
    credentials: Informer<KubeObject>;
    secrets: SecretCaches;
  };
  let elector: LeaderElector | undefined;
  let queue: WorkQueue | undefined;
  let running: Promise<void>[] = [];
  let active = 0;
  let leading = false;
  let gaugeTimer: NodeJS.Timeout | undefined;
  const idleWaiters: Array<() => void> = [];
  /**
   * key → the resourceVersion our last write produced (and the uid of the object written),
   * until the informer delivers it. The uid tells a re-created object of the same name from
   * the one written: a finalizer removal's response can arrive after the deletion it caused.
   */
  const expectations = new Map<string, { uid: string; rv: string; at: number }>();
  /** key → the last resourceVersions the informer delivered (a watch event can beat the write's response). */
  const seen = new Map<string, string[]>();

  /** `namespace/leaseId` → VaultLease key, so that a change made in Vault reaches its object. */
  const byLeaseId = new Map<string, string>();
  const tenantWatches = new Map<string, Promise<{ close(): Promise<void> } | undefined>>();

  function indexLease(obj: KubeObject) {
    const ns = obj.metadata.namespace;
    const leaseId = (obj.status as { leaseId?: string } | undefined)?.leaseId;
    if (leaseId) byLeaseId.set(`${ns}/${leaseId}`, keyOf('VaultLease', ns, obj.metadata.name));
    if (tenantWatches.has(ns)) return;
    const tenant = tenantOf(ns);
    tenantWatches.set(
      ns,
      options.vault
        .watchLeases(
          tenant,
          (event) => {
            if (event.type !== 'revoked' && event.type !== 'renewed') return;
            const key = byLeaseId.get(`${ns}/${event.leaseId}`);
            if (key) queue?.add(key);
          },
          // Back after a break: what changed meanwhile sent no event, so look at every lease
          // of the namespace now rather than at the next resync.
          () => {
            for (const [leaseKey, key] of byLeaseId) if (leaseKey.startsWith(`${ns}/`)) queue?.add(key);
          },
        )
        .catch((err: unknown) => {
          logger.warn({ tenant, err: String(err) }, 'could not watch the tenant leases');
          tenantWatches.delete(ns);
          return undefined;
        }),
    );
  }

  function enqueue(kind: Kind, obj: KubeObject) {
    queue?.add(keyOf(kind, obj.metadata.namespace, obj.metadata.name));
  }

  function satisfy(kind: Kind, obj: KubeObject): boolean {
    const key = keyOf(kind, obj.metadata.namespace, obj.metadata.name);
    const rvs = seen.get(key) ?? [];
    rvs.push(obj.metadata.resourceVersion ?? '');
    seen.set(key, rvs.slice(-4));
    const expected = expectations.get(key);
    if (expected && expected.uid !== obj.metadata.uid) expectations.delete(key);
    if (expected && expected.rv === obj.metadata.resourceVersion) {
      expectations.delete(key);
      return true;
    }
    return false;
  }

  function watchKind(kind: Kind, informer: Informer<KubeObject>, onAny?: (obj: KubeObject) => void) {
    informer.addHandlers({
      onAdd: (obj) => {
        satisfy(kind, obj);
        enqueue(kind, obj);
        onAny?.(obj);
      },
      onUpdate: (obj, old) => {
        const caughtUp = satisfy(kind, obj);
        if (specChanged(obj, old) || caughtUp) enqueue(kind, obj);
        onAny?.(obj);
      },
      onDelete: (obj) => {
        const key = keyOf(kind, obj.metadata.namespace, obj.metadata.name);
        expectations.delete(key);
        seen.delete(key);
      },
      onResync: (obj) => enqueue(kind, obj),
    });
  }

  /** Dependent VaultLeases wait for their credential: a credential change gives them another look. */
  function enqueueDependentLeases(credential: KubeObject) {
    for (const lease of informers.leases.list(credential.metadata.namespace)) {
      const spec = lease.spec as { credentialRef?: { name?: string } } | undefined;
      const phase = (lease.status as { phase?: string } | undefined)?.phase;
      if (spec?.credentialRef?.name === credential.metadata.name && phase !== 'Active')
        enqueue('VaultLease', lease);
    }
  }

  function enqueueCredentialsOfSecret(secret: KubeObject) {
    for (const cred of informers.credentials.list(secret.metadata.namespace)) {
      const ref = importedSecretRef((cred.spec as Partial<VaultCredentialSpec> | undefined)?.source);
      if (ref?.name === secret.metadata.name) enqueue('VaultCredential', cred);
    }
  }

  const secretLookup: SecretLookup = (namespace, name, key, importer) => {
    if (!informers.secrets.granted(namespace)) return { refused: 'namespace-not-granted' };
    // Only Secrets labelled for import are in this cache: any other is invisible here.
    const secret = informers.secrets.get(namespace, name) as
      | (KubeObject & { data?: Record<string, string> })
      | undefined;
    if (!secret) return { refused: 'not-importable' };
    const importers = importersOf(secret.metadata.annotations);
    if (!importers.includes(importer)) return { refused: 'not-named', importers };
    const encoded = secret.data?.[key];
    if (encoded === undefined) return { missing: 'key' };
    const value = Buffer.from(encoded, 'base64').toString('utf8');
    if (value.length === 0) return { missing: 'empty' };
    return { value, resourceVersion: secret.metadata.resourceVersion ?? '' };
  };

  function trackingClient(): KubeClient {
    const remember = (type: ResourceType, ns: string | undefined, name: string, result: KubeObject) => {
      const kind = kindOfType(type);
      const rv = result?.metadata?.resourceVersion;
      const uid = result?.metadata?.uid;
      if (kind && ns && rv && uid) {
        const key = keyOf(kind, ns, name);
        if (!seen.get(key)?.includes(rv)) expectations.set(key, { uid, rv, at: Date.now() });
      }
      return result;
    };
    return {
      ...client,
      mergePatch: async <T>(
        type: ResourceType,
        ns: string | undefined,
        name: string,
        patch: unknown,
        o?: { subresource?: 'status' },
      ) => remember(type, ns, name, await client.mergePatch<KubeObject>(type, ns, name, patch, o)) as T,
      jsonPatch: async <T>(type: ResourceType, ns: string | undefined, name: string, ops: unknown[]) =>
        remember(type, ns, name, await client.jsonPatch<KubeObject>(type, ns, name, ops)) as T,
    };
  }

  async function restartOwner(obj: VaultLeaseObject) {
    const owner = obj.metadata.ownerReferences?.find(
      (ref) => ref.apiVersion === 'apps/v1' && ['Deployment', 'StatefulSet', 'DaemonSet'].includes(ref.kind),
    );
    if (!owner) return;
    const plural = `${owner.kind.toLowerCase()}s`;
    const type: ResourceType = { group: 'apps', version: 'v1', plural, namespaced: true };
    try {
      // ownerReferences are written by whoever creates the VaultLease, who may have no right to
      // restart that workload: restart it only when it is that object (uid) and its pod
      // template reads this VaultLease (a lease-<file> annotation), which its editor wrote.
      const workload = await client.get<
        KubeObject & { spec?: { template?: { metadata?: KubeObject['metadata'] } } }
      >(type, obj.metadata.namespace, owner.name);
      const templateAnnotations = workload.spec?.template?.metadata?.annotations ?? {};
      const usesLease = Object.entries(templateAnnotations).some(
        ([key, value]) => key.startsWith(fileAnnotationPrefixes.lease) && value === obj.metadata.name,
      );
      if (workload.metadata.uid !== owner.uid || !usesLease) {
        logger.warn(
          { kind: 'VaultLease', object: `${obj.metadata.namespace}/${obj.metadata.name}`, owner: owner.name },
          'not restarting the owner: it is not the referenced object, or its pod template does not read this VaultLease',
        );
        return;
      }
      await client.mergePatch(type, obj.metadata.namespace, owner.name, {
        spec: {
          template: {
            metadata: { annotations: { 'vault.ghoststack.io/restartedAt': clock().toISOString() } },
          },
        },
      });
    } catch (err) {
      logger.warn({ err: String(err), owner: owner.name }, 'could not restart the owning workload');
    }
  }

  async function reportInvalid(kind: Kind, raw: KubeObject, message: string) {
    const type = kind === 'VaultLease' ? resourceTypes.vaultLeases : resourceTypes.vaultCredentials;
    const status = (raw.status ?? {}) as { conditions?: never; phase?: string };
    const desired = {
      ...status,
      phase: 'Failed',
      observedGeneration: raw.metadata.generation,
      conditions: readyCondition(
        status.conditions,
        { status: 'False', reason: 'InvalidSpec', message },
        raw.metadata.generation,
        clock(),
      ),
    };
    if (sameJson(status, desired)) return;
    await trackingClient().mergePatch(
      type,
      raw.metadata.namespace,
      raw.metadata.name,
      {
        status: statusPatch(status, desired),
      },
      { subresource: 'status' },
    );
  }

  /**
   * A finalizer that cannot run keeps the object: the Ready condition says why and what to
   * do, and the reconcile is retried with backoff.
   */
  async function reportFinalizerFailure(kind: Kind, raw: KubeObject, err: unknown) {
    const type = kind === 'VaultLease' ? resourceTypes.vaultLeases : resourceTypes.vaultCredentials;
    const what = kind === 'VaultLease' ? 'the lease' : 'the credential and its leases';
    const cause = err instanceof Error ? err.message : String(err);
    const message =
      `could not revoke ${what} in Vault before deletion: ${cause}. The controller retries with backoff; ` +
      `if Vault cannot be reached again, removing the finalizer ${finalizer} lets the object go ` +
      'without revoking (the lease then stays valid in Vault until it expires)';
    const status = (raw.status ?? {}) as { conditions?: never };
    const desired = {
      ...status,
      conditions: readyCondition(
        status.conditions,
        { status: 'False', reason: 'FinalizerFailed', message },
        raw.metadata.generation,
        clock(),
      ),
    };
    if (sameJson(status, desired)) return;
    try {
      await trackingClient().mergePatch(
        type,
        raw.metadata.namespace,
        raw.metadata.name,
        { status: statusPatch(status, desired) },
        { subresource: 'status' },
      );
    } catch (patchErr) {
      logger.warn(
        { kind, object: `${raw.metadata.namespace}/${raw.metadata.name}`, err: String(patchErr) },
        'could not record the finalizer failure',
      );
    }
  }

  async function reconcileKey(key: string, reconcilers: Reconcilers): Promise<ReconcileOutcome> {
    const { kind, ns, name } = parseKey(key);
    const informer = kind === 'VaultLease' ? informers.leases : informers.credentials;
    const raw = informer.get(ns, name);
    const expected = expectations.get(key);
    if (expected) {
      // Our last write has not reached the cache yet: its arrival requeues the key. An
      // expectation about another object of this name (deleted, re-created) is moot.
      const fresh = raw !== undefined && raw.metadata.uid === expected.uid;
      if (fresh && Date.now() - expected.at < 10_000) return { requeueAfterMs: 10_000 };
      expectations.delete(key);
    }
    if (!raw) return {};
    try {
      if (kind === 'VaultLease') {
        const parsed = parseVaultLease(raw);
        if (!parsed.ok) {
          await reportInvalid(kind, raw, parsed.message);
          return {};
        }
        const invalid = raw.metadata.deletionTimestamp ? undefined : leaseRequestProblems(parsed.value);
        if (invalid) {
          await reportInvalid(kind, raw, invalid);
          return {};
        }
        return await reconcilers.lease(parsed.value);
      }
      const parsed = parseVaultCredential(raw);
      if (!parsed.ok) {
        await reportInvalid(kind, raw, parsed.message);
        return {};
      }
      const invalid = raw.metadata.deletionTimestamp ? undefined : credentialRequestProblems(parsed.value);
      if (invalid) {
        await reportInvalid(kind, raw, invalid);
        return {};
      }
      return await reconcilers.credential(parsed.value);
    } catch (err) {
      if (raw.metadata.deletionTimestamp && raw.metadata.finalizers?.includes(finalizer)) {
        await reportFinalizerFailure(kind, raw, err);
      }
      throw err;
    }
  }

  interface Reconcilers {
    lease(obj: VaultLeaseObject): Promise<ReconcileOutcome>;
    credential(obj: VaultCredentialObject): Promise<ReconcileOutcome>;
  }

  async function worker(q: WorkQueue, reconcilers: Reconcilers) {
    for (;;) {
      const key = await q.get();
      if (key === undefined) return;
      active++;
      const kind = parseKey(key).kind;
      const end = metrics.reconcileDuration.startTimer({ kind });
      try {
        const outcome = await reconcileKey(key, reconcilers);
        q.forget(key);
        if (outcome.requeueAfterMs !== undefined) q.addAfter(key, outcome.requeueAfterMs);
        end({ result: 'ok' });
      } catch (err) {
        end({ result: 'error' });
        metrics.reconcileErrors.inc({ kind });
        const { ns, name } = parseKey(key);
        // The object's namespace/name, not `key`: the logger redacts every field called key.
        logger.warn(
          {
            kind,
            object: `${ns}/${name}`,
            err: err instanceof Error ? err.message : String(err),
            failures: q.failures(key) + 1,
          },
          'reconcile failed',
        );
        q.addRateLimited(key);
      } finally {
        active--;
        q.done(key);
        if (active === 0 && q.depth === 0) for (const resolve of idleWaiters.splice(0)) resolve();
      }
    }
  }

  function startWorkers() {
    const q = createWorkQueue(options.retry);
    queue = q;
    const kubeClient = trackingClient();
    const events = createEventRecorder({
      client,
      controller: 'vault.ghoststack.io/operator',
      instance: identity,
      clock,
      logger,
    });
    const deps = { client: kubeClient, vault: options.vault, tenantOf, events, clock, logger };
    const reconcilers: Reconcilers = {
      lease: createLeaseReconciler({ ...deps, onExpiredRestart: restartOwner }),
      credential: createCredentialReconciler({
        ...deps,
        secret: secretLookup,
        ...(options.dynamicPollMs ? { dynamicPollMs: options.dynamicPollMs } : {}),
      }),
    };
    // Credentials first: leases depend on them.
    for (const obj of informers.credentials.list()) enqueue('VaultCredential', obj);
    for (const obj of informers.leases.list()) enqueue('VaultLease', obj);
    running = Array.from({ length: workers }, () => worker(q, reconcilers));
  }

  async function stopWorkers() {
    queue?.shutdown();
    queue = undefined;
    await Promise.all(running);
    running = [];
  }

  function refreshGauges() {
    const count = (
      list: KubeObject[],
      phases: readonly string[],
      gauge: OperatorMetrics['leasesByPhase'],
    ) => {
      const counts = Object.fromEntries(phases.map((p) => [p, 0])) as Record<string, number>;
      for (const obj of list) {
        const phase = (obj.status as { phase?: string } | undefined)?.phase ?? 'Pending';
        counts[phase] = (counts[phase] ?? 0) + 1;
      }
      for (const [phase, n] of Object.entries(counts)) gauge.set({ phase }, n);
    };
    count(informers.leases.list(), leasePhases, metrics.leasesByPhase);
    count(informers.credentials.list(), credentialPhases, metrics.credentialsByPhase);
    const caches = {
      vaultleases: informers.leases,
      vaultcredentials: informers.credentials,
      secrets: informers.secrets,
    };
    for (const [resource, informer] of Object.entries(caches)) {
      metrics.informerObjects.set({ resource }, informer.list().length);
    }
    metrics.queueDepth.set(queue?.depth ?? 0);
    metrics.queueScheduled.set(queue?.scheduled ?? 0);
  }

  return {
    identity,
    metrics,
    get isLeader() {
      return leading;
    },
    async start() {
      client = await createKubeClient(options.kubeConfig);
      client.onRequest = (verb, type, code) =>
        metrics.apiRequests.inc({ verb, resource: type.plural, code: String(code) });
      const make = (type: ResourceType) =>
        createInformer<KubeObject>({
          client,
          type,
          resyncMs: options.resyncMs,
          logger,
          onError: () => metrics.informerErrors.inc({ resource: type.plural }),
        });
      informers = {
        leases: make(resourceTypes.vaultLeases),
        credentials: make(resourceTypes.vaultCredentials),
        secrets: createSecretCaches({
          client,
          namespaces: options.secretNamespaces ?? [],
          resyncMs: options.resyncMs,
          logger,
          onError: () => metrics.informerErrors.inc({ resource: 'secrets' }),
        }),
      };
      watchKind('VaultLease', informers.leases, indexLease);
      watchKind('VaultCredential', informers.credentials, enqueueDependentLeases);
      informers.secrets.addHandlers({
        onAdd: enqueueCredentialsOfSecret,
        onUpdate: enqueueCredentialsOfSecret,
        onDelete: enqueueCredentialsOfSecret,
      });
      await Promise.all([informers.leases.start(), informers.credentials.start(), informers.secrets.start()]);
      gaugeTimer = setInterval(refreshGauges, 5_000);
      gaugeTimer.unref();

      const becomeLeader = () => {
        leading = true;
        metrics.isLeader.set(1);
        startWorkers();
      };
      if (!election.enabled) {
        becomeLeader();
        return;
      }
      elector = createLeaderElector({
        client,
        namespace: election.namespace,
        name: election.name,
        identity,
        leaseDurationMs: election.leaseDurationMs,
        renewDeadlineMs: election.renewDeadlineMs,
        retryPeriodMs: election.retryPeriodMs,
        clock,
        logger,
        onStartedLeading: becomeLeader,
        onStoppedLeading: () => {
          leading = false;
          metrics.isLeader.set(0);
          void stopWorkers();
        },
      });
      void elector.run();
    },
    async stop(stopOptions = {}) {
      if (gaugeTimer) clearInterval(gaugeTimer);
      await stopWorkers();
      await elector?.stop(!stopOptions.abandon);
      leading = false;
      await Promise.all(Object.values(informers ?? {}).map((informer) => informer.stop()));
      for (const watch of tenantWatches.values()) await (await watch)?.close();
      tenantWatches.clear();
      client?.close();
    },
    idle() {
      if (active === 0 && (queue?.depth ?? 0) === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}
