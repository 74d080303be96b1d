/**
 * Tenant key rotation, online and resumable.
 *
 * The contract with the services that own sealed values: every JSON record under the
 * prefixes the keyring was given for a tenant (`sealedPrefixes(tenant)`) that has a top-level
 * `sealed` property holding a SealedValue is the keyring's to re-wrap. Records without one are
 * left alone. The keyring rewrites only `sealed.wrappedDataKey` and `sealed.tenantKeyVersion`,
 * with a compare-and-swap on the record's modRevision, re-reading and retrying when the owner
 * changed the record meanwhile; the value's ciphertext never changes.
 *
 * Steps:
 * 1. One transaction creates tenant key version `to`, points `current` at it (new values are
 *    sealed with it from then on) and writes the rotation record
 *    /vault/keys/rotations/tenant/<tenant> = { from, to, prefixes, phase, cursor, startedAt }.
 *    Its compare on "no rotation record" makes a second concurrent rotation resume this one.
 * 2. A walk (walker.ts) re-wraps every sealed value not yet under `to`, saving its cursor in
 *    the rotation record after each page, guarded by that record's modRevision so two
 *    processes never both drive one rotation.
 * 3. One transaction marks the older versions `retired` and deletes the rotation record.
 *    Retired versions stay in the store (wrapped) so that a value the walk could not reach
 *    still opens; only shredTenant destroys keys.
 *
 * A crash anywhere leaves either no rotation (before 1 or after 3) or a rotation record that
 * `resumeRotations()` (or running the same rotation again) continues from its cursor.
 */

import { randomBytes } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { readSmallPrefix } from '../store/paged.js';
import type { KeyValue, Store } from '../store/store.js';
import { KEY_BYTES } from './blob.js';
import { rewrapDataKey } from './envelope.js';
import { CryptoError, isCryptoError } from './errors.js';
import {
  checkTenant,
  currentRecordSchema,
  keyPaths,
  parseRecord,
  parseTenantKeyPath,
  sealedValueSchema,
  type TenantRotationRecord,
  tenantKeyRecordSchema,
  tenantRotationRecordSchema,
} from './key-records.js';
import { MAX_CAS_ATTEMPTS, type TenantKeys } from './tenant-keys.js';
import { type RotationOptions, rewriteRecord, startState, type WalkState, walk } from './walker.js';

export interface TenantRotationResult {
  tenant: string;
  from: number;
  to: number;
  /** Sealed values whose data key this run re-wrapped. */
  rewrapped: number;
  /** Store keys of records whose sealed value could not be opened (left as they were). */
  unreadable: string[];
  /** True when this call continued a rotation that had been started before. */
  resumed: boolean;
}

export interface TenantRotationDeps {
  store: Store;
  tenantKeys: TenantKeys;
  clock: Clock;
  logger: Logger;
  pageSize: number;
  sealedPrefixes: (tenant: string) => string[];
}

const MAX_UNREADABLE_LISTED = 100;

export async function rotateTenantKey(
  deps: TenantRotationDeps,
  tenant: string,
  options: RotationOptions,
): Promise<TenantRotationResult> {
  checkTenant(tenant);
  const { store, tenantKeys, clock } = deps;
  const rotationKey = keyPaths.tenantRotation(tenant);
  const currentKey = keyPaths.tenantCurrent(tenant);

  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const existing = await store.get(rotationKey);
    if (existing) return runTenantRotation(deps, tenant, existing, options, true);

    const currentKv = await store.get(currentKey);
    const current = parseRecord(currentRecordSchema, currentKey, currentKv?.value);
    if (!currentKv || !current) {
      throw new CryptoError(
        'key_not_found',
        `tenant ${tenant} has no key yet, so there is nothing to rotate`,
      );
    }
    const from = current.version;
    const to = from + 1;
    const key = randomBytes(KEY_BYTES);
    const keyRecord = await tenantKeys.wrapRecord(tenant, to, key);
    key.fill(0);
    const rotation: TenantRotationRecord = {
      from,
      to,
      prefixes: deps.sealedPrefixes(tenant),
      ...startState(),
      startedAt: clock().toISOString(),
    };
    const result = await store.txn({
      compare: [
        { key: rotationKey, modRevision: 0 },
        { key: currentKey, modRevision: currentKv.modRevision },
        { key: keyPaths.tenantKey(tenant, to), modRevision: 0 },
      ],
      success: [
        { type: 'put', key: keyPaths.tenantKey(tenant, to), value: JSON.stringify(keyRecord) },
        { type: 'put', key: currentKey, value: JSON.stringify({ version: to }) },
        { type: 'put', key: rotationKey, value: JSON.stringify(rotation) },
      ],
    });
    if (result.succeeded) {
      deps.logger.info({ tenant, from, to }, 'tenant key rotation started');
      const kv = await store.get(rotationKey);
      if (!kv) throw conflict(tenant);
      return runTenantRotation(deps, tenant, kv, options, false);
    }
  }
  throw conflict(tenant);
}

/** Continues (or starts driving) the rotation whose record is `kv`. */
export async function runTenantRotation(
  deps: TenantRotationDeps,
  tenant: string,
  kv: KeyValue,
  options: RotationOptions,
  resumed: boolean,
): Promise<TenantRotationResult> {
  const { store, tenantKeys, logger } = deps;
  const rotationKey = keyPaths.tenantRotation(tenant);
  let rotation = parseRecord(tenantRotationRecordSchema, rotationKey, kv.value)!;
  let rotationRevision = kv.modRevision;
  const toKey = await tenantKeys.key(tenant, rotation.to);
  const unreadable = new Set<string>();
  let rewrapped = 0;
  if (resumed) logger.info({ tenant, from: rotation.from, to: rotation.to }, 'resuming tenant key rotation');

  const visit = async (first: KeyValue) => {
    const wrote = await rewriteRecord(store, first, async (kv) => {
      const record = parseJsonObject(kv.value);
      if (!record || record.sealed === undefined) return undefined;
      const parsed = sealedValueSchema.safeParse(record.sealed);
      // Another tenant's value under an overlapping prefix ("/hmac/acme" and "/hmac/acme2") is not ours.
      if (parsed.success && (parsed.data.tenant !== tenant || parsed.data.tenantKeyVersion === rotation.to))
        return undefined;
      try {
        if (!parsed.success) throw new CryptoError('decrypt_failed', 'malformed sealed value');
        const fromKey = await tenantKeys.key(tenant, parsed.data.tenantKeyVersion);
        return JSON.stringify({ ...record, sealed: rewrapDataKey(fromKey, toKey, rotation.to, parsed.data) });
      } catch (err) {
        // A value that cannot be opened now never could be; skip it rather than block the rotation.
        if (!isCryptoError(err, 'decrypt_failed') && !isCryptoError(err, 'key_destroyed')) throw err;
        if (!unreadable.has(kv.key))
          logger.warn({ tenant, record: kv.key }, 'sealed value cannot be opened; left as is');
        unreadable.add(kv.key);
        return undefined;
      }
    });
    if (wrote) rewrapped++;
  };

  const save = async (state: WalkState) => {
    const next = { ...rotation, ...state };
    const result = await store.txn({
      compare: [{ key: rotationKey, modRevision: rotationRevision }],
      success: [{ type: 'put', key: rotationKey, value: JSON.stringify(next) }],
    });
    if (!result.succeeded) throw conflict(tenant);
    rotation = next;
    rotationRevision = result.revision;
  };

  await walk({
    store,
    prefixes: rotation.prefixes,
    state: { phase: rotation.phase, cursor: rotation.cursor },
    pageSize: deps.pageSize,
    visit,
    save,
    options,
  });
  await finish(deps, tenant, rotation.to, rotationRevision);
  logger.info({ tenant, from: rotation.from, to: rotation.to, rewrapped }, 'tenant key rotation finished');
  return {
    tenant,
    from: rotation.from,
    to: rotation.to,
    rewrapped,
    unreadable: [...unreadable].slice(0, MAX_UNREADABLE_LISTED),
    resumed,
  };
}

/** Retires every version below `to` and removes the rotation record, in one transaction. */
async function finish(deps: TenantRotationDeps, tenant: string, to: number, rotationRevision: number) {
  const { store } = deps;
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const kvs = await readSmallPrefix(store, keyPaths.tenantKeys(tenant));
    const retire = kvs.flatMap((kv) => {
      if (!/^\d+$/.test(parseTenantKeyPath(kv.key)?.leaf ?? '')) return [];
      const record = parseRecord(tenantKeyRecordSchema, kv.key, kv.value)!;
      return record.version < to && record.state === 'active' ? [{ kv, record }] : [];
    });
    const result = await store.txn({
      compare: [
        { key: keyPaths.tenantRotation(tenant), modRevision: rotationRevision },
        ...retire.map(({ kv }) => ({ key: kv.key, modRevision: kv.modRevision })),
      ],
      success: [
        ...retire.map(({ kv, record }) => ({
          type: 'put' as const,
          key: kv.key,
          value: JSON.stringify({ ...record, state: 'retired' }),
        })),
        { type: 'delete', key: keyPaths.tenantRotation(tenant) },
      ],
    });
    if (result.succeeded) return;
    const rotation = await store.get(keyPaths.tenantRotation(tenant));
    if (rotation?.modRevision !== rotationRevision) throw conflict(tenant);
  }
  throw conflict(tenant);
}

function parseJsonObject(value: string): Record<string, unknown> | undefined {
  try {
    const json: unknown = JSON.parse(value);
    return json !== null && typeof json === 'object' && !Array.isArray(json)
      ? (json as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function conflict(tenant: string): CryptoError {
  return new CryptoError(
    'rotation_conflict',
    `the key rotation of tenant ${tenant} changed under this process (is another process running it?); run it again`,
  );
}
