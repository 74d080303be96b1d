import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import { describeStoreContract } from './contract.js';

describeStoreContract('embedded', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vault-store-'));
  const store = await openEmbeddedStore({ path: join(dir, 'data') });
  return {
    store,
    async cleanup() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
