/**
 * Root key rotation, online and resumable: every tenant key record is re-wrapped from whichever
 * root wrapped it to the new root. The tenant keys themselves do not change, so no value is
 * touched and cached keys stay valid.
 *
 * The rotation record /vault/keys/rotations/root = { from, to, phase, cursor, startedAt }
 * says a rotation to root `to` is under way; while it exists, new tenant keys are wrapped by
 * `to` in every process that holds it (tenant-keys.ts). Each record is re-wrapped with a
 * compare-and-swap on its modRevision, and re-wrapping is idempotent (records already under
 * `to` are skipped), so a crash at any point is repaired by running the same rotation again
 * (`resumeRotations()` does it when this process holds root `to`). A record whose root is
 * not available stops the rotation: finishing without it would lose that tenant's data once
 * the old root is discarded.
 */

import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { KeyValue, Store } from '../store/store.js';
import { CryptoError } from './errors.js';
import {
  keyPaths,
  parseRecord,
  parseTenantKeyPath,
  type RootRotationRecord,
  rootRotationRecordSchema,
  tenantKeyAad,
  tenantKeyRecordSchema,
} from './key-records.js';
import type { RootKeyProvider } from './root-key.js';
import { MAX_CAS_ATTEMPTS, type RootSet, type TenantKeys } from './tenant-keys.js';
import { type RotationOptions, rewriteRecord, startState, type WalkState, walk } from './walker.js';

export interface RootRotationResult {
  from: string;
  to: string;
  /** Tenant key records this run re-wrapped. */
  rewrapped: number;
  resumed: boolean;
}

export interface RootRotationDeps {
  store: Store;
  roots: RootSet;
  tenantKeys: TenantKeys;
  clock: Clock;
  logger: Logger;
  pageSize: number;
}

export async function rotateRootKey(
  deps: RootRotationDeps,
  newRoot: RootKeyProvider,
  options: RotationOptions,
): Promise<RootRotationResult> {
  const { store, roots, clock } = deps;
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const existing = await store.get(keyPaths.rootRotation);
    if (existing) {
      const rotation = parseRecord(rootRotationRecordSchema, keyPaths.rootRotation, existing.value)!;
      if (rotation.to !== newRoot.id) {
        throw new CryptoError(
          'rotation_conflict',
          `a root key rotation to ${rotation.to} is in progress; finish it by running it again with that root key`,
        );
      }
      roots.activate(newRoot);
      return runRootRotation(deps, existing, options, true);
    }
    const rotation: RootRotationRecord = {
      from: roots.active().id,
      to: newRoot.id,
      ...startState(),
      startedAt: clock().toISOString(),
    };
    const result = await store.txn({
      compare: [{ key: keyPaths.rootRotation, modRevision: 0 }],
      success: [{ type: 'put', key: keyPaths.rootRotation, value: JSON.stringify(rotation) }],
    });
    if (result.succeeded) {
      roots.activate(newRoot);
      deps.logger.info({ from: rotation.from, to: rotation.to }, 'root key rotation started');
      const kv = await store.get(keyPaths.rootRotation);
      if (kv) return runRootRotation(deps, kv, options, false);
    }
  }
  throw conflict();
}

/** Drives the rotation whose record is `kv`; the caller made root `to` active. */
export async function runRootRotation(
  deps: RootRotationDeps,
  kv: KeyValue,
  options: RotationOptions,
  resumed: boolean,
): Promise<RootRotationResult> {
  const { store, roots, tenantKeys, logger } = deps;
  let rotation = parseRecord(rootRotationRecordSchema, keyPaths.rootRotation, kv.value)!;
  let rotationRevision = kv.modRevision;
  const newRoot = roots.find(rotation.to);
  if (!newRoot)
    throw new CryptoError('root_key_unavailable', `this process does not hold root key ${rotation.to}`);
  let rewrapped = 0;
  if (resumed) logger.info({ from: rotation.from, to: rotation.to }, 'resuming root key rotation');

  const visit = async (first: KeyValue) => {
    const wrote = await rewriteRecord(store, first, async (kv) => {
      const path = parseTenantKeyPath(kv.key);
      if (!path || !/^\d+$/.test(path.leaf)) return undefined;
      const record = parseRecord(tenantKeyRecordSchema, kv.key, kv.value)!;
      if (record.rootKeyId === newRoot.id) return undefined;
      const key = await tenantKeys.unwrapRecord(path.tenant, record);
      try {
        const wrapped = await newRoot.wrap(key, tenantKeyAad(path.tenant, record.version));
        return JSON.stringify({ ...record, wrapped, rootKeyId: newRoot.id });
      } finally {
        key.fill(0);
      }
    });
    if (wrote) rewrapped++;
  };

  const save = async (state: WalkState) => {
    const next = { ...rotation, ...state };
    const result = await store.txn({
      compare: [{ key: keyPaths.rootRotation, modRevision: rotationRevision }],
      success: [{ type: 'put', key: keyPaths.rootRotation, value: JSON.stringify(next) }],
    });
    if (!result.succeeded) throw conflict();
    rotation = next;
    rotationRevision = result.revision;
  };

  await walk({
    store,
    prefixes: [keyPaths.allTenantKeys],
    state: { phase: rotation.phase, cursor: rotation.cursor },
    pageSize: deps.pageSize,
    visit,
    save,
    options,
  });
  const done = await store.txn({
    compare: [{ key: keyPaths.rootRotation, modRevision: rotationRevision }],
    success: [{ type: 'delete', key: keyPaths.rootRotation }],
  });
  if (!done.succeeded) throw conflict();
  logger.info({ from: rotation.from, to: rotation.to, rewrapped }, 'root key rotation finished');
  return { from: rotation.from, to: rotation.to, rewrapped, resumed };
}

function conflict(): CryptoError {
  return new CryptoError(
    'rotation_conflict',
    'the root key rotation changed under this process (is another process running it?); run it again',
  );
}
