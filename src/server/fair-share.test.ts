import { describe, expect, it } from 'vitest';
import { createBulkGate } from './fair-share.js';

const deferred = () => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
};

describe('the bulk-operation gate', () => {
  it("runs a tenant's operations at most perTenant at a time, queues the rest, refuses past the queue", async () => {
    const gate = createBulkGate({ perProcess: 4, perTenant: 1, queue: 1 });
    const first = deferred();
    const order: string[] = [];
    const a = gate.run('t', async () => {
      order.push('a');
      await first.promise;
    });
    const b = gate.run('t', async () => {
      order.push('b');
    });
    // A second tenant is not held up by the first one's line.
    await gate.run('other', async () => {
      order.push('other');
    });
    await expect(gate.run('t', async () => undefined)).rejects.toMatchObject({
      code: 'rate_limited',
      message: expect.stringContaining('--max-bulk-operations-per-tenant'),
    });
    expect(order).toEqual(['a', 'other']);
    first.resolve();
    await Promise.all([a, b]);
    expect(order).toEqual(['a', 'other', 'b']);
    expect(gate.running()).toBe(0);
  });

  it('holds every tenant to the process limit and frees the slot of a failed operation', async () => {
    const gate = createBulkGate({ perProcess: 1, perTenant: 1, queue: 4 });
    const hold = deferred();
    const failing = gate.run('x', async () => {
      await hold.promise;
      throw new Error('boom');
    });
    let ran = false;
    const waiting = gate.run('y', async () => {
      ran = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(ran).toBe(false);
    hold.resolve();
    await expect(failing).rejects.toThrow('boom');
    await waiting;
    expect(ran).toBe(true);
  });
});
