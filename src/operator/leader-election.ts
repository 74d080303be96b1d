/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: the holder renews
 * `renewTime` every retry period with an optimistic-concurrency update; a candidate takes the
 * Lease over once it has seen no change to it for a whole lease duration (measured on its own
 * clock from when it observed the record, so clock skew between replicas does not matter); a
 * leader that cannot renew within the renew deadline steps down before anyone can take over.
 * On a clean stop the leader releases the Lease so a standby takes over at once.
 */

import { isStatus, type KubeClient, resourceTypes } from '../k8s/api-client.js';
import type { Clock } from '../lib/clock.js';
import { systemClock } from '../lib/clock.js';
import { interruptibleSleep } from '../lib/interruptible-sleep.js';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';

export interface LeaderElectionOptions {
  client: Pick<KubeClient, 'get' | 'create' | 'replace'>;
  namespace: string;
  name: string;
  /** This replica's identity (pod name plus a random suffix). */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  clock?: Clock;
  logger?: Logger;
  onStartedLeading(): void;
  onStoppedLeading(): void;
  onNewLeader?(identity: string): void;
}

interface LeaseObject {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

export interface LeaderElector {
  run(): Promise<void>;
  /** One acquire-or-renew attempt; true when this replica holds the Lease afterwards. */
  tryAcquireOrRenew(): Promise<boolean>;
  /** Stops campaigning; releases the Lease unless `release` is false (a simulated crash). */
  stop(release?: boolean): Promise<void>;
  readonly isLeader: boolean;
  readonly leader: string | undefined;
}

const microTime = (date: Date) => date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export function createLeaderElector(options: LeaderElectionOptions): LeaderElector {
  const clock = options.clock ?? systemClock;
  const logger = (options.logger ?? silentLogger).child({
    component: 'leader-election',
    lease: options.name,
  });
  const leaseDurationMs = options.leaseDurationMs ?? 15_000;
  const renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
  const retryPeriodMs = options.retryPeriodMs ?? 2_000;
  const type = resourceTypes.leases;

  let observed: { resourceVersion: string; holder: string; at: number } | undefined;
  let leading = false;
  let lastRenew = 0;
  let stopped = false;
  let currentLeader: string | undefined;
  let loop: Promise<void> | undefined;

  function setLeading(value: boolean) {
    if (value === leading) return;
    leading = value;
    if (value) {
      logger.info({ identity: options.identity }, 'became leader');
      options.onStartedLeading();
    } else {
      logger.warn({ identity: options.identity }, 'stopped leading');
      options.onStoppedLeading();
    }
  }

  function spec(now: Date, existing?: LeaseObject['spec']): LeaseObject['spec'] {
    const holderChanged = existing?.holderIdentity !== options.identity;
    return {
      holderIdentity: options.identity,
      leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
      acquireTime: holderChanged ? microTime(now) : (existing?.acquireTime ?? microTime(now)),
      renewTime: microTime(now),
      leaseTransitions: (existing?.leaseTransitions ?? 0) + (existing && holderChanged ? 1 : 0),
    };
  }

  async function tryAcquireOrRenew(): Promise<boolean> {
    const now = clock();
    let lease: LeaseObject;
    try {
      lease = await options.client.get<LeaseObject>(type, options.namespace, options.name);
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      try {
        await options.client.create(type, options.namespace, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: options.name, namespace: options.namespace },
          spec: spec(now),
        });
      } catch (createErr) {
        if (isStatus(createErr, 409)) return false;
        throw createErr;
      }
      observed = { resourceVersion: '', holder: options.identity, at: now.getTime() };
      noteLeader(options.identity);
      return true;
    }
    const holder = lease.spec.holderIdentity ?? '';
    const rv = lease.metadata.resourceVersion ?? '';
    if (!observed || observed.resourceVersion !== rv) {
      observed = { resourceVersion: rv, holder, at: now.getTime() };
    }
    noteLeader(holder || undefined);
    const durationMs = (lease.spec.leaseDurationSeconds ?? leaseDurationMs / 1000) * 1000;
    const heldByOther = holder !== '' && holder !== options.identity;
    if (heldByOther && observed.at + durationMs > now.getTime()) return false;
    try {
      await options.client.replace(type, options.namespace, options.name, {
        ...lease,
        spec: spec(now, lease.spec),
      });
    } catch (err) {
      if (isStatus(err, 409)) return false;
      throw err;
    }
    noteLeader(options.identity);
    return true;
  }

  function noteLeader(identity: string | undefined) {
    if (identity === currentLeader) return;
    currentLeader = identity;
    if (identity) options.onNewLeader?.(identity);
  }

  const { sleep, wake } = interruptibleSleep();

  async function run() {
    while (!stopped) {
      let held = false;
      try {
        held = await tryAcquireOrRenew();
      } catch (err) {
        logger.warn({ err: String(err) }, 'leader election attempt failed');
      }
      if (stopped) break;
      const now = clock().getTime();
      if (held) {
        lastRenew = now;
        setLeading(true);
      } else if (leading && now - lastRenew >= renewDeadlineMs) {
        setLeading(false);
      } else if (leading && !held && currentLeader !== options.identity) {
        // Someone else holds it (we were too slow): step down at once.
        setLeading(false);
      }
      await sleep(retryPeriodMs * (held ? 1 : 1 + Math.random() * 0.2));
    }
  }

  async function release() {
    if (!leading) return;
    try {
      const lease = await options.client.get<LeaseObject>(type, options.namespace, options.name);
      if (lease.spec.holderIdentity !== options.identity) return;
      const now = microTime(clock());
      await options.client.replace(type, options.namespace, options.name, {
        ...lease,
        spec: {
          ...lease.spec,
          holderIdentity: null,
          leaseDurationSeconds: 1,
          renewTime: now,
          acquireTime: now,
        },
      });
    } catch (err) {
      logger.warn({ err: String(err) }, 'could not release the leader lease');
    }
  }

  return {
    get isLeader() {
      return leading;
    },
    get leader() {
      return currentLeader;
    },
    tryAcquireOrRenew,
    run() {
      stopped = false;
      loop = run();
      return loop;
    },
    async stop(releaseLease = true) {
      stopped = true;
      wake();
      await loop;
      if (releaseLease) await release();
      setLeading(false);
    },
  };
}
