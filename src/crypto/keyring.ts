/**
 * The keyring: root key → tenant keys → one data key per credential version → the value.
 *
 * Callers seal a value into a SealedValue and keep it inside their own record, written in
 * their own transaction; the keyring only reads tenant keys to seal and open. It writes the
 * store for tenant key creation, rotation and shredding, all under /vault/keys/.
 */
import { type Clock, systemClock } from '../lib/clock.js';
import { type Logger, silentLogger } from '../lib/logger.js';
import { getMany, readSmallPrefix } from '../store/paged.js';
import type { KeyValue, Store } from '../store/store.js';
import { checkValueRef, openWithTenantKey, sealedKeyVersion, sealWithTenantKey } from './envelope.js';
import { CryptoError } from './errors.js';
import { createKeyCache } from './key-cache.js';
import {
  checkTenant,
  currentRecordSchema,
  keyPaths,
  parseRecord,
  parseTenantKeyPath,
  rootRotationRecordSchema,
  type SealedValue,
  shreddedRecordSchema,
  tenantKeyRecordSchema,
  tenantRotationRecordSchema,
} from './key-records.js';
import type { RootKeyProvider } from './root-key.js';
import { type RootRotationResult, rotateRootKey, runRootRotation } from './root-rotation.js';
import { createRootSet, createTenantKeys, MAX_CAS_ATTEMPTS } from './tenant-keys.js';
import { rotateTenantKey, runTenantRotation, type TenantRotationResult } from './tenant-rotation.js';
import type { RotationOptions } from './walker.js';

export type { SealedValue } from './key-records.js';
export type { RootRotationResult } from './root-rotation.js';
export type { TenantRotationResult } from './tenant-rotation.js';
export type { RotationOptions, RotationProgress } from './walker.js';

export interface KeyringDeps {
  store: Store;
  /** The first root is active (wraps new tenant keys); the others are old roots still accepted for unwrapping. */
  roots: RootKeyProvider[];
  /**
   * Where a tenant's sealed values live: store prefixes whose JSON records carry a top-level
   * `sealed` property holding a SealedValue. Tenant key rotation re-wraps exactly those.
   */
  sealedPrefixes: (tenant: string) => string[];
  clock?: Clock;
  logger?: Logger;
  /** Unwrapped tenant keys kept in memory: at most `maxEntries` (1024), each for `ttlMs` (60 s). */
  cache?: { maxEntries?: number; ttlMs?: number };
  /**
   * Records per page (and per saved cursor) in rotations; 12: a sealed value may take some
   * 350 KiB (64 KiB of 4-byte UTF-8, base64), and etcd refuses an answer over 4 MiB. Each record
   * is re-wrapped in its own transaction, so the page size hardly changes a rotation's speed.
   */
  pageSize?: number;
}

export interface TenantKeyVersionStatus {
  version: number;
  state: 'active' | 'retired';
  rootKeyId: string;
  createdAt: string;
}

export interface KeyStatus {
  /** The root key that wraps new tenant keys in this process. */
  rootKeyId: string;
  tenants: Array<{
    tenant: string;
    currentVersion: number | null;
    versions: TenantKeyVersionStatus[];
    /** The distinct roots wrapping this tenant's keys (one, except during or after an unfinished root rotation). */
    rootKeyIds: string[];
  }>;
  rotations: {
    root: { from: string; to: string; phase: string; startedAt: string } | null;
    tenants: Array<{ tenant: string; from: number; to: number; phase: string; startedAt: string }>;
  };
  shredded: Array<{ tenant: string; shreddedAt: string }>;
}

export interface ResumeResult {
  root: RootRotationResult | null;
  tenants: TenantRotationResult[];
  /** Rotations that could not be resumed here, with why (they stay recorded for a later try). */
  failed: Array<{ rotation: string; message: string }>;
}

export interface Keyring {
  /** The active root key's id. */
  readonly rootKeyId: string;
  /** The tenant's current key version, creating the first key if there is none; safe to race. */
  ensureTenantKey(tenant: string): Promise<number>;
  /** Seals one credential version's value with a fresh data key under the tenant's current key. */
  sealValue(tenant: string, credential: string, version: number, plaintext: Buffer): Promise<SealedValue>;
  /** Opens a sealed value; fails unless (tenant, credential, version) is where it was sealed. */
  openValue(tenant: string, credential: string, version: number, sealed: SealedValue): Promise<Buffer>;
  /** Starts a tenant key rotation (or resumes the one in progress) and runs it to the end. */
  rotateTenantKey(tenant: string, options?: RotationOptions): Promise<TenantRotationResult>;
  /** Makes `newRoot` active and re-wraps every tenant key under it (resuming a rotation to the same root). */
  rotateRootKey(newRoot: RootKeyProvider, options?: RotationOptions): Promise<RootRotationResult>;
  /** Continues every rotation a crash left behind; call once at startup. */
  resumeRotations(options?: RotationOptions): Promise<ResumeResult>;
  /**
   * The key hierarchy's state: every tenant's, or with `tenants` only theirs (their own key
   * records read, not every tenant's: a tenant admin's call, or a page of tenants, costs what
   * those tenants have).
   */
  status(tenants?: string[]): Promise<KeyStatus>;
  /** Destroys every key of the tenant: its values can never be decrypted again. */
  shredTenant(tenant: string): Promise<void>;
}

export function createKeyring(deps: KeyringDeps): Keyring {
  const { store } = deps;
  const clock = deps.clock ?? systemClock;
  const logger = (deps.logger ?? silentLogger).child({ component: 'keyring' });
  const pageSize = deps.pageSize ?? 12;
  const roots = createRootSet(deps.roots);
  const cache = createKeyCache({
    clock,
    maxEntries: deps.cache?.maxEntries ?? 1024,
    ttlMs: deps.cache?.ttlMs ?? 60_000,
  });
  const tenantKeys = createTenantKeys({ store, roots, clock, cache });
  const tenantRotationDeps = {
    store,
    tenantKeys,
    clock,
    logger,
    pageSize,
    sealedPrefixes: deps.sealedPrefixes,
  };
  const rootRotationDeps = { store, roots, tenantKeys, clock, logger, pageSize };

  return {
    get rootKeyId() {
      return roots.active().id;
    },

    ensureTenantKey: (tenant) => tenantKeys.ensure(tenant),

    async sealValue(tenant, credential, version, plaintext) {
      checkTenant(tenant);
      const ref = { tenant, credential, version };
      checkValueRef(ref);
      const keyVersion = await tenantKeys.ensure(tenant);
      const key = await tenantKeys.key(tenant, keyVersion);
      return sealWithTenantKey(key, keyVersion, ref, plaintext);
    },

    async openValue(tenant, credential, version, sealedValue) {
      checkTenant(tenant);
      const ref = { tenant, credential, version };
      checkValueRef(ref);
      const { sealed, keyVersion } = sealedKeyVersion(tenant, sealedValue);
      const key = await tenantKeys.key(tenant, keyVersion);
      return openWithTenantKey(key, ref, sealed);
    },

    rotateTenantKey: (tenant, options = {}) => rotateTenantKey(tenantRotationDeps, tenant, options),

    rotateRootKey: (newRoot, options = {}) => rotateRootKey(rootRotationDeps, newRoot, options),

    async resumeRotations(options = {}) {
      const outcome: ResumeResult = { root: null, tenants: [], failed: [] };
      const rootKv = await store.get(keyPaths.rootRotation);
      if (rootKv) {
        const rotation = parseRecord(rootRotationRecordSchema, keyPaths.rootRotation, rootKv.value)!;
        const target = roots.find(rotation.to);
        if (!target) {
          const message = `root key rotation to ${rotation.to} cannot continue: this process does not hold that root key`;
          logger.warn({ to: rotation.to }, message);
          outcome.failed.push({ rotation: 'root', message });
        } else {
          try {
            roots.activate(target);
            outcome.root = await runRootRotation(rootRotationDeps, rootKv, options, true);
          } catch (err) {
            outcome.failed.push({ rotation: 'root', message: failureMessage(err, logger, 'root') });
          }
        }
      }
      for (const kv of await rangeAll(store, keyPaths.allTenantRotations)) {
        const tenant = kv.key.slice(keyPaths.allTenantRotations.length);
        try {
          outcome.tenants.push(await runTenantRotation(tenantRotationDeps, tenant, kv, options, true));
        } catch (err) {
          outcome.failed.push({ rotation: `tenant ${tenant}`, message: failureMessage(err, logger, tenant) });
        }
      }
      return outcome;
    },

    async status(only) {
      const byTenant = new Map<string, KeyStatus['tenants'][number]>();
      const records =
        only === undefined
          ? await rangeAll(store, keyPaths.allTenantKeys)
          : (await Promise.all(only.map((tenant) => rangeAll(store, keyPaths.tenantKeys(tenant))))).flat();
      for (const kv of records) {
        const path = parseTenantKeyPath(kv.key);
        if (!path) continue;
        let entry = byTenant.get(path.tenant);
        if (!entry) {
          entry = { tenant: path.tenant, currentVersion: null, versions: [], rootKeyIds: [] };
          byTenant.set(path.tenant, entry);
        }
        if (path.leaf === 'current') {
          entry.currentVersion = parseRecord(currentRecordSchema, kv.key, kv.value)!.version;
        } else {
          const { version, state, rootKeyId, createdAt } = parseRecord(
            tenantKeyRecordSchema,
            kv.key,
            kv.value,
          )!;
          entry.versions.push({ version, state, rootKeyId, createdAt });
          if (!entry.rootKeyIds.includes(rootKeyId)) entry.rootKeyIds.push(rootKeyId);
        }
      }
      for (const entry of byTenant.values()) entry.versions.sort((a, b) => a.version - b.version);

      const rootKv = await store.get(keyPaths.rootRotation);
      const root = parseRecord(rootRotationRecordSchema, keyPaths.rootRotation, rootKv?.value);
      const each = async (key: (tenant: string) => string) =>
        (await getMany(store, only!.map(key))).filter((kv) => kv !== undefined);
      const rotationKvs =
        only === undefined
          ? await rangeAll(store, keyPaths.allTenantRotations)
          : await each(keyPaths.tenantRotation);
      const tenantRotations = rotationKvs.map((kv) => {
        const { from, to, phase, startedAt } = parseRecord(tenantRotationRecordSchema, kv.key, kv.value)!;
        return { tenant: kv.key.slice(keyPaths.allTenantRotations.length), from, to, phase, startedAt };
      });
      const shreddedKvs =
        only === undefined ? await rangeAll(store, keyPaths.shredded('')) : await each(keyPaths.shredded);
      const shredded = shreddedKvs.map((kv) => ({
        tenant: kv.key.slice(keyPaths.shredded('').length),
        shreddedAt: parseRecord(shreddedRecordSchema, kv.key, kv.value)!.shreddedAt,
      }));
      return {
        rootKeyId: roots.active().id,
        tenants: [...byTenant.values()],
        rotations: {
          root: root ? { from: root.from, to: root.to, phase: root.phase, startedAt: root.startedAt } : null,
          tenants: tenantRotations,
        },
        shredded,
      };
    },

    async shredTenant(tenant) {
      checkTenant(tenant);
      for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
        const kvs = await readSmallPrefix(store, keyPaths.tenantKeys(tenant));
        const versions = kvs.flatMap((kv) => {
          const leaf = parseTenantKeyPath(kv.key)?.leaf ?? '';
          return /^\d+$/.test(leaf) ? [Number(leaf)] : [];
        });
        const currentKv = kvs.find((kv) => kv.key === keyPaths.tenantCurrent(tenant));
        const shreddedKv = await store.get(keyPaths.shredded(tenant));
        const previous = parseRecord(shreddedRecordSchema, keyPaths.shredded(tenant), shreddedKv?.value);
        const destroyedThrough = Math.max(previous?.destroyedThrough ?? 0, ...versions);
        // The compare on `current` fails the shred if a key version was created meanwhile,
        // so destroyedThrough always covers every version deleted here.
        const result = await store.txn({
          compare: [
            { key: keyPaths.tenantCurrent(tenant), modRevision: currentKv?.modRevision ?? 0 },
            { key: keyPaths.shredded(tenant), modRevision: shreddedKv?.modRevision ?? 0 },
          ],
          success: [
            { type: 'deletePrefix', prefix: keyPaths.tenantKeys(tenant) },
            { type: 'delete', key: keyPaths.tenantRotation(tenant) },
            {
              type: 'put',
              key: keyPaths.shredded(tenant),
              value: JSON.stringify({ destroyedThrough, shreddedAt: clock().toISOString() }),
            },
          ],
        });
        if (result.succeeded) {
          tenantKeys.forget(tenant);
          logger.warn({ tenant, destroyedThrough }, 'tenant keys shredded');
          return;
        }
      }
      throw new CryptoError(
        'rotation_conflict',
        `could not shred tenant ${tenant}: its keys kept changing; run it again`,
      );
    },
  };
}

async function rangeAll(store: Store, prefix: string): Promise<KeyValue[]> {
  const all: KeyValue[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await store.range(prefix, { limit: 500, ...(after ? { startAfter: after } : {}) });
    all.push(...page.kvs);
    after = page.kvs.at(-1)?.key;
    if (!page.more || after === undefined) return all;
  }
}

function failureMessage(err: unknown, logger: Logger, rotation: string): string {
  const message = err instanceof Error ? err.message : String(err);
  logger.error({ rotation, err: { message } }, 'key rotation could not be resumed');
  return message;
}
