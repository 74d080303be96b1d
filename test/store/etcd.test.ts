import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { describeStoreContract } from './contract.js';

let etcd: EtcdProcess;

beforeAll(async () => {
  etcd = await startEtcd();
});

afterAll(async () => {
  await etcd?.destroy();
});

// Each test gets its own key namespace on the one etcd, so tests cannot see each other's keys.
describeStoreContract('etcd', async () => {
  const store = await openEtcdStore({ endpoints: [etcd.endpoint], prefix: `contract/${randomUUID()}/` });
  return { store, cleanup: () => store.close() };
});
