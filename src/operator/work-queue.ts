/**
 * A keyed work queue in the manner of client-go's: a key waiting in the queue is queued once
 * however often it is added; a key being processed is never handed to a second worker, and
 * an add during processing runs it again afterwards; failures back off per key
 * (exponentially, capped) under an overall token bucket; `addAfter` schedules a key for a
 * point in time (the earliest request wins), which is how expiry and renewal are timed.
 */

export interface WorkQueueOptions {
  /** First retry delay of a failing key; doubles per failure. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Overall rate of rate-limited adds (a token bucket): per second and burst. */
  qps?: number;
  burst?: number;
}

export interface WorkQueue {
  add(key: string): void;
  addAfter(key: string, delayMs: number): void;
  /** Re-adds a key after its backoff (for a failed reconcile). */
  addRateLimited(key: string): void;
  /** Clears a key's failure count (after a successful reconcile). */
  forget(key: string): void;
  failures(key: string): number;
  /** Resolves with the next key, or undefined once shut down. */
  get(): Promise<string | undefined>;
  done(key: string): void;
  /** Keys waiting (not counting scheduled or in-process ones). */
  readonly depth: number;
  readonly scheduled: number;
  shutdown(): void;
}

export function createWorkQueue(options: WorkQueueOptions = {}): WorkQueue {
  const baseDelayMs = options.baseDelayMs ?? 250;
  const maxDelayMs = options.maxDelayMs ?? 300_000;
  const qps = options.qps ?? 50;
  const burst = options.burst ?? 200;

  const queue: string[] = [];
  const dirty = new Set<string>();
  const processing = new Set<string>();
  const failureCounts = new Map<string, number>();
  const timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  const waiters: Array<(key: string | undefined) => void> = [];
  let tokens = burst;
  let lastRefill = Date.now();
  let closed = false;

  function add(key: string) {
    if (closed || dirty.has(key)) return;
    dirty.add(key);
    if (processing.has(key)) return;
    const waiter = waiters.shift();
    if (waiter) {
      dirty.delete(key);
      processing.add(key);
      waiter(key);
    } else queue.push(key);
  }

  function addAfter(key: string, delayMs: number) {
    if (closed) return;
    if (delayMs <= 0) return add(key);
    const at = Date.now() + delayMs;
    const existing = timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    // setTimeout caps at ~24.8 days; a longer wait is re-armed when the first one fires.
    const wait = Math.min(delayMs, 2_000_000_000);
    const timer = setTimeout(() => {
      timers.delete(key);
      if (Date.now() + 5 < at) addAfter(key, at - Date.now());
      else add(key);
    }, wait);
    timer.unref?.();
    timers.set(key, { at, timer });
  }

  function bucketDelay(): number {
    const now = Date.now();
    tokens = Math.min(burst, tokens + ((now - lastRefill) / 1000) * qps);
    lastRefill = now;
    tokens -= 1;
    return tokens >= 0 ? 0 : (-tokens / qps) * 1000;
  }

  return {
    add,
    addAfter,
    addRateLimited(key) {
      const n = failureCounts.get(key) ?? 0;
      failureCounts.set(key, n + 1);
      const perKey = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(n, 30));
      addAfter(key, Math.max(perKey, bucketDelay()));
    },
    forget(key) {
      failureCounts.delete(key);
    },
    failures: (key) => failureCounts.get(key) ?? 0,
    get() {
      if (closed) return Promise.resolve(undefined);
      const key = queue.shift();
      if (key !== undefined) {
        dirty.delete(key);
        processing.add(key);
        return Promise.resolve(key);
      }
      return new Promise((resolve) => waiters.push(resolve));
    },
    done(key) {
      processing.delete(key);
      if (dirty.has(key)) {
        dirty.delete(key);
        add(key);
      }
    },
    get depth() {
      return queue.length;
    },
    get scheduled() {
      return timers.size;
    },
    shutdown() {
      closed = true;
      for (const { timer } of timers.values()) clearTimeout(timer);
      timers.clear();
      queue.length = 0;
      for (const waiter of waiters.splice(0)) waiter(undefined);
    },
  };
}
