/**
 * Group commit for upstream calls: whatever arrives while a batch is running goes into the
 * next one, so N concurrent leases cost one transaction instead of N, and a lone lease waits
 * for nobody. `run` settles each item on its own (a result or an error per item).
 */
export type Settled<O> = { ok: true; value: O } | { ok: false; error: unknown };

export function createBatcher<I, O>(
  run: (items: I[]) => Promise<Settled<O>[]>,
  options: { maxBatch: number; concurrency: number },
) {
  interface Waiting {
    item: I;
    resolve: (value: O) => void;
    reject: (error: unknown) => void;
  }
  const queue: Waiting[] = [];
  let active = 0;

  async function drain() {
    if (active >= options.concurrency || queue.length === 0) return;
    active++;
    try {
      while (queue.length > 0) {
        const batch = queue.splice(0, options.maxBatch);
        let results: Settled<O>[];
        try {
          results = await run(batch.map((w) => w.item));
        } catch (error) {
          results = batch.map(() => ({ ok: false, error }));
        }
        batch.forEach((waiting, i) => {
          const result = results[i];
          if (result?.ok) waiting.resolve(result.value);
          else waiting.reject(result ? result.error : new Error('the batch returned no result'));
        });
      }
    } finally {
      active--;
    }
  }

  return {
    submit(item: I): Promise<O> {
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        void drain();
      });
    },
  };
}

/** One batcher per key (e.g. per admin connection and statements). */
export function keyedBatchers<I, O>(make: (key: string) => ReturnType<typeof createBatcher<I, O>>) {
  const batchers = new Map<string, ReturnType<typeof createBatcher<I, O>>>();
  return {
    submit(key: string, item: I): Promise<O> {
      let batcher = batchers.get(key);
      if (!batcher) {
        batcher = make(key);
        batchers.set(key, batcher);
      }
      return batcher.submit(item);
    },
    clear: () => batchers.clear(),
  };
}
