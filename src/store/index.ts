/**
 * The storage layer: one Store interface (store.ts) and two implementations. Callers pick
 * one with `openStore(config)`; nothing above this folder knows which it got.
 */
import { type EmbeddedStoreOptions, openEmbeddedStore } from './embedded-store.js';
import { type EtcdStoreOptions, openEtcdStore } from './etcd-store.js';
import type { Store } from './store.js';

export type { EmbeddedStoreOptions } from './embedded-store.js';
export { embeddedStoreFile, openEmbeddedStore } from './embedded-store.js';
export { StoreClosedError, WatchCompactedError } from './errors.js';
export type { EtcdStoreOptions, EtcdTlsOptions } from './etcd-store.js';
export { openEtcdStore } from './etcd-store.js';
export type * from './store.js';

export type StoreConfig =
  | ({ kind: 'embedded' } & EmbeddedStoreOptions)
  | ({ kind: 'etcd' } & EtcdStoreOptions);

export function openStore(config: StoreConfig): Promise<Store> {
  return config.kind === 'embedded' ? openEmbeddedStore(config) : openEtcdStore(config);
}
