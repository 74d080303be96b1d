import { describe, expect, it } from 'vitest';
import { createWorkQueue } from './work-queue.js';

describe('work queue', () => {
  it('queues a key once however often it is added, and never to two workers at once', async () => {
    const q = createWorkQueue();
    q.add('a');
    q.add('a');
    q.add('b');
    expect(q.depth).toBe(2);
    expect(await q.get()).toBe('a');
    q.add('a'); // while processing: runs again after done, not in parallel
    expect(await q.get()).toBe('b');
    expect(q.depth).toBe(0);
    q.done('a');
    expect(await q.get()).toBe('a');
    q.done('a');
    q.done('b');
    expect(q.depth).toBe(0);
    q.shutdown();
    expect(await q.get()).toBeUndefined();
  });

  it('keeps the earliest of several timed adds, and backs off per key', async () => {
    const q = createWorkQueue({ baseDelayMs: 20, maxDelayMs: 1000 });
    q.addAfter('k', 60_000);
    q.addAfter('k', 10);
    expect(q.scheduled).toBe(1);
    const started = Date.now();
    expect(await q.get()).toBe('k');
    expect(Date.now() - started).toBeLessThan(30_000);
    q.done('k');
    q.addRateLimited('x');
    q.addRateLimited('x');
    expect(q.failures('x')).toBe(2);
    q.forget('x');
    expect(q.failures('x')).toBe(0);
    q.shutdown();
  });
});
