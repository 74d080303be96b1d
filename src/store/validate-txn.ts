import { badRequest } from '../lib/errors.js';
import type { Txn } from './store.js';

/**
 * Rejects transactions etcd would reject, so both stores fail the same way and before any
 * write: empty keys, negative revisions, a branch that writes one key twice (two puts, or a
 * put under a delete), and more than `maxOps` compares or operations in a branch.
 */
export function validateTxn(txn: Txn, maxOps: number): void {
  for (const [part, items] of [
    ['compares', txn.compare ?? []],
    ['operations in its success branch', txn.success],
    ['operations in its failure branch', [...(txn.failure ?? []), ...(txn.failureReads ?? [])]],
  ] as const) {
    if (items.length > maxOps) {
      throw badRequest(
        `a transaction may hold at most ${maxOps} ${part} (the store's max-txn-ops), got ${items.length}`,
      );
    }
  }
  for (const compare of txn.compare ?? []) {
    if (compare.key === '') throw badRequest('a transaction compare needs a non-empty key');
    if (!Number.isSafeInteger(compare.modRevision) || compare.modRevision < 0) {
      throw badRequest(`a compare revision must be a whole number >= 0, got ${compare.modRevision}`);
    }
  }
  for (const read of txn.failureReads ?? []) {
    if ('key' in read ? read.key === '' : !(Number.isSafeInteger(read.limit) && read.limit > 0)) {
      throw badRequest('a failure read needs a non-empty key, or a prefix and a limit of at least 1');
    }
  }
  validateBranch(txn.success);
  if (txn.failure) validateBranch(txn.failure);
}

function validateBranch(ops: Txn['success']): void {
  const puts = new Set<string>();
  const deletes: string[] = [];
  const prefixes: string[] = [];
  for (const op of ops) {
    if (op.type === 'put') {
      if (op.key === '') throw badRequest('a put needs a non-empty key');
      if (typeof op.value !== 'string') throw badRequest(`the value put at "${op.key}" must be a string`);
      if (puts.has(op.key)) throw badRequest(`a transaction may not put "${op.key}" twice`);
      puts.add(op.key);
    } else if (op.type === 'delete') {
      if (op.key === '') throw badRequest('a delete needs a non-empty key');
      deletes.push(op.key);
    } else {
      prefixes.push(op.prefix);
    }
  }
  for (const key of puts) {
    if (deletes.includes(key) || prefixes.some((prefix) => key.startsWith(prefix))) {
      throw badRequest(`a transaction may not both put and delete "${key}"`);
    }
  }
}

export function assertKey(key: string): void {
  if (key === '') throw badRequest('a store key must not be empty');
}
