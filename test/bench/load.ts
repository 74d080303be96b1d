/**
 * Closed-loop load: `concurrency` callers, each issuing its next request when the last one
 * answers, until `maxOps` requests or `maxMs` have passed (whichever comes first), after a
 * short warm-up that is not counted. HTTP load runs in a worker thread (its own event loop),
 * so the client does not steal the server's thread; both still share the machine's cores.
 */
import { Worker } from 'node:worker_threads';

export interface LoadLimits {
  concurrency: number;
  maxOps: number;
  maxMs: number;
  warmupOps: number;
}

export interface LoadResult {
  ops: number;
  errors: number;
  /** Status code → count (HTTP), or 'ok'/'failed' (other load). */
  outcomes: Record<string, number>;
  elapsedMs: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  firstError?: string;
  /** Every successful request's latency (ms), to merge rounds. */
  latencies: number[];
}

export interface HttpLoad extends LoadLimits {
  url: string;
  /** One base URL per caller, round-robin (e.g. each tenant's replica); overrides `url`. */
  urls?: string[];
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  token?: string;
  /** One token per caller, round-robin (e.g. one per tenant); overrides `token`. */
  tokens?: string[];
  /** The status that counts as success. */
  expectStatus: number;
}

/** Runs `op` in this thread under the same closed loop (for the raw etcd client). */
export async function runLoad(limits: LoadLimits, op: (n: number) => Promise<void>): Promise<LoadResult> {
  let n = 0;
  for (let i = 0; i < limits.warmupOps; i += limits.concurrency) {
    await Promise.all(Array.from({ length: limits.concurrency }, () => op(n++)));
  }
  const latencies: number[] = [];
  const outcomes: Record<string, number> = {};
  let errors = 0;
  let firstError: string | undefined;
  let issued = 0;
  const started = performance.now();
  const deadline = started + limits.maxMs;
  const caller = async () => {
    while (issued < limits.maxOps && performance.now() < deadline) {
      issued += 1;
      const t0 = performance.now();
      try {
        await op(n++);
        latencies.push(performance.now() - t0);
        outcomes.ok = (outcomes.ok ?? 0) + 1;
      } catch (err) {
        errors += 1;
        firstError ??= (err as Error).message;
        outcomes.failed = (outcomes.failed ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: limits.concurrency }, caller));
  return summarize(latencies, errors, outcomes, performance.now() - started, firstError);
}

/** Runs HTTP load from a worker thread with a keep-alive node:http agent. */
export function runHttpLoad(spec: HttpLoad): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(workerSource, { eval: true, workerData: spec });
    worker.once(
      'message',
      (message: {
        latencies: number[];
        errors: number;
        outcomes: Record<string, number>;
        elapsedMs: number;
        firstError?: string;
      }) => {
        resolve(
          summarize(
            message.latencies,
            message.errors,
            message.outcomes,
            message.elapsedMs,
            message.firstError,
          ),
        );
        void worker.terminate();
      },
    );
    worker.once('error', reject);
  });
}

function summarize(
  latencies: number[],
  errors: number,
  outcomes: Record<string, number>,
  elapsedMs: number,
  firstError: string | undefined,
): LoadResult {
  const sorted = Float64Array.from(latencies).sort();
  const at = (q: number) =>
    sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN;
  return {
    ops: latencies.length,
    errors,
    outcomes,
    elapsedMs,
    perSecond: (latencies.length / elapsedMs) * 1000,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    ...(firstError ? { firstError } : {}),
    latencies,
  };
}

/** One result from several rounds of the same phase: total ops over total time, pooled latencies. */
export function mergeResults(rounds: LoadResult[]): LoadResult {
  const outcomes: Record<string, number> = {};
  for (const round of rounds) {
    for (const [key, count] of Object.entries(round.outcomes)) outcomes[key] = (outcomes[key] ?? 0) + count;
  }
  return summarize(
    rounds.flatMap((round) => round.latencies),
    rounds.reduce((sum, round) => sum + round.errors, 0),
    outcomes,
    rounds.reduce((sum, round) => sum + round.elapsedMs, 0),
    rounds.find((round) => round.firstError)?.firstError,
  );
}

// Plain JavaScript so the worker needs no TypeScript loader.
const workerSource = `
const { workerData, parentPort } = require('node:worker_threads');
const http = require('node:http');
const spec = workerData;
const targets = (spec.urls || [spec.url]).map((url) => new URL(url));
const agent = new http.Agent({ keepAlive: true, maxSockets: spec.concurrency });
const payload = spec.body === undefined ? undefined : Buffer.from(JSON.stringify(spec.body));
const tokens = spec.tokens || (spec.token ? [spec.token] : []);
const headersFor = (caller) => {
  const headers = {};
  if (tokens.length) headers.authorization = 'Bearer ' + tokens[caller % tokens.length];
  if (payload) { headers['content-type'] = 'application/json'; headers['content-length'] = payload.length; }
  return headers;
};
const once = (caller) => new Promise((resolve, reject) => {
  const headers = headersFor(caller);
  const target = targets[caller % targets.length];
  const req = http.request({ agent, host: target.hostname, port: target.port, method: spec.method, path: spec.path, headers }, (res) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk) => { text += chunk; });
    res.on('end', () => resolve({ status: res.statusCode, text }));
    res.on('error', reject);
  });
  req.on('error', reject);
  req.end(payload);
});
(async () => {
  for (let i = 0; i < spec.warmupOps; i += spec.concurrency) {
    await Promise.all(Array.from({ length: spec.concurrency }, (_, caller) => once(caller).catch(() => undefined)));
  }
  const latencies = [];
  const outcomes = {};
  let errors = 0;
  let firstError;
  let issued = 0;
  const started = performance.now();
  const deadline = started + spec.maxMs;
  const caller = async (index) => {
    while (issued < spec.maxOps && performance.now() < deadline) {
      issued += 1;
      const t0 = performance.now();
      try {
        const res = await once(index);
        outcomes[res.status] = (outcomes[res.status] || 0) + 1;
        if (res.status === spec.expectStatus) latencies.push(performance.now() - t0);
        else { errors += 1; if (!firstError) firstError = res.status + ' ' + res.text.slice(0, 300); }
      } catch (err) {
        errors += 1;
        outcomes.network = (outcomes.network || 0) + 1;
        if (!firstError) firstError = String(err && err.message);
      }
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, (_, index) => caller(index)));
  const elapsedMs = performance.now() - started;
  agent.destroy();
  parentPort.postMessage({ latencies, errors, outcomes, elapsedMs, firstError });
})();
`;
