/**
 * Lease creations under load while something breaks: `clients` callers, each creating leases
 * with its own Idempotency-Key per lease, for `durationMs`; a refused attempt (503 store
 * unavailable or outcome unknown, a 409 "retry the request", a dropped connection) is retried
 * with the same key until it is answered 201, as the SDK does. Records what every attempt got.
 */
import { randomUUID } from 'node:crypto';
import { call, sleep } from './harness.js';

export interface LoadOutcome {
  /** Idempotency-Key → the lease id its 201 named. */
  acknowledged: Map<string, string>;
  /** Keys never answered 201 before the retry deadline. */
  unanswered: string[];
  /** Error answers by `status code` (e.g. `503 outcome_unknown`), and dropped connections. */
  errors: Record<string, number>;
  /** Answers that are neither success nor a retryable refusal. */
  unexpected: string[];
  /** Keys that needed more than one attempt. */
  retried: number;
}

const retryable = (status: number, code: string | undefined) =>
  (status === 503 && (code === 'store_unavailable' || code === 'outcome_unknown')) ||
  (status === 409 && code === 'conflict');

export async function createLeasesUnderLoad(options: {
  url: string;
  token: string;
  credentialName: string;
  clients: number;
  durationMs: number;
  /** How long a key keeps being retried after the load ended. */
  retryForMs?: number;
  /** Called once, this long after the start (the fault). */
  at?: Array<{ afterMs: number; run: () => Promise<void> }>;
}): Promise<LoadOutcome> {
  const outcome: LoadOutcome = {
    acknowledged: new Map(),
    unanswered: [],
    errors: {},
    unexpected: [],
    retried: 0,
  };
  const started = Date.now();
  const stopAt = started + options.durationMs;
  const giveUpAt = stopAt + (options.retryForMs ?? 30_000);
  const count = (what: string) => {
    outcome.errors[what] = (outcome.errors[what] ?? 0) + 1;
  };
  const faults = (options.at ?? []).map(async (fault) => {
    await sleep(fault.afterMs);
    await fault.run();
  });

  const client = async () => {
    while (Date.now() < stopAt) {
      const key = randomUUID();
      for (let attempt = 1; ; attempt++) {
        if (attempt === 2) outcome.retried += 1;
        if (Date.now() > giveUpAt) {
          outcome.unanswered.push(key);
          break;
        }
        try {
          const res = await call(
            options.url,
            'POST',
            '/v1/leases',
            options.token,
            { credentialName: options.credentialName, ttl: '1h' },
            { 'idempotency-key': key },
          );
          if (res.status === 201) {
            outcome.acknowledged.set(key, res.body.id);
            break;
          }
          const code = res.body?.error?.code as string | undefined;
          count(`${res.status} ${code}`);
          if (!retryable(res.status, code)) {
            outcome.unexpected.push(`${res.status} ${JSON.stringify(res.body)}`);
            break;
          }
        } catch (err) {
          count(`connection: ${(err as Error).cause ?? (err as Error).message}`.slice(0, 80));
        }
        await sleep(Math.min(100 * attempt, 1_000));
      }
    }
  };
  await Promise.all([...Array.from({ length: options.clients }, client), ...faults]);
  return outcome;
}
