import { describe, expect, it } from 'vitest';
import { type LeaseCounts, throttleLeaseCounts } from './metrics.js';

/** A count that takes `tookMs` on a clock the test moves. */
function counter(tookMs: number) {
  let clock = 1_000_000;
  let calls = 0;
  const count = async (): Promise<LeaseCounts> => {
    calls++;
    await new Promise((resolve) => setTimeout(resolve, 1));
    clock += tookMs;
    return { total: { active: calls, expired: 0, revoked: 0 }, byTenant: new Map() };
  };
  return {
    count,
    now: () => clock,
    advance: (ms: number) => {
      clock += ms;
    },
    calls: () => calls,
  };
}

describe('throttleLeaseCounts', () => {
  it('counts at most every 10 s where counting is cheap', async () => {
    const c = counter(5);
    const counts = throttleLeaseCounts(c.count, c.now);
    expect((await counts())?.total.active).toBe(1);
    c.advance(9_000);
    expect((await counts())?.total.active).toBe(1);
    c.advance(1_000);
    expect((await counts())?.total.active).toBe(2);
  });

  it('counts at most 2 % of the time where counting is slow (etcd holds writes back meanwhile)', async () => {
    const c = counter(1_200);
    const counts = throttleLeaseCounts(c.count, c.now);
    await counts();
    c.advance(30_000);
    expect((await counts())?.total.active).toBe(1);
    c.advance(30_000);
    expect((await counts())?.total.active).toBe(2);
  });

  it('runs one count for scrapes that arrive together', async () => {
    const c = counter(1_200);
    const counts = throttleLeaseCounts(c.count, c.now);
    await Promise.all([counts(), counts(), counts()]);
    expect(c.calls()).toBe(1);
  });
});
