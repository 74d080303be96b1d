/**
 * A fleet of agents whose leases end together (issue 13): how long until every delivered file
 * is gone when 10,000 leases end at once,
 *
 * - by one bulk revocation (`POST /v1/leases/revoke` of the credential): from the call to each
 *   file's wipe, every agent told by its own lease-event stream;
 * - by expiry: leases that may not be renewed or replaced (ttl = maxTtl, and the policy stops
 *   allowing new leases once every file is written), from each lease's end to the wipe.
 *
 * Real parts, as in a cluster: etcd, `vault server` (a process), and BENCH_AGENTS `vault agent`
 * processes (the agent command bundled, with the webhook's Node options) each keeping
 * BENCH_FILES files, running as the non-root uid the webhook gives agents, writing to a tmpfs
 * (/dev/shm) directory shaped like a pod's emptyDir, each with its own token and identity (a
 * pod's ServiceAccount). Every agent follows its own lease-event stream, so the server fans
 * each revocation out to BENCH_AGENTS streams. Not a test: it prints numbers, never fails on them.
 *
 *   npm run bench:agents
 *   BENCH_AGENTS=157 BENCH_FILES=64 BENCH_EXPIRY_AFTER=360 BENCH_CPU_PROFILE=/tmp/prof npm run bench:agents
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateRootKeyFile } from '../../src/crypto/root-key.js';
import { type Lease, Vault } from '../../src/sdk/index.js';
import { agentNodeOptions } from '../../src/webhook/mutate.js';
import { bootstrap, repoRoot, startServer } from '../crash/vault-server.js';
import { agentUid, canSwitchUser, podVolume } from '../support/as-user.js';
import { startEtcd } from '../support/etcd.js';
import { bundleAgent } from './agent-bundle.js';

const env = process.env;
const agentCount = Number(env.BENCH_AGENTS ?? 157);
const filesPerAgent = Number(env.BENCH_FILES ?? 64);
/** Seconds from the expiry fleet's start to the moment its leases end. */
const expiryAfterS = Number(env.BENCH_EXPIRY_AFTER ?? 360);
const total = agentCount * filesPerAgent;
if (!canSwitchUser()) throw new Error('run as root: the agents are started as a non-root uid, as in a pod');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
};
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const load = () => loadavg()[0]!.toFixed(1);
/** CPU seconds a process has used (user + system), from /proc. */
const cpuSeconds = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};

/** Every agent started; killed if this process ends before stopping them (a failed run). */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

interface RunningAgent {
  index: number;
  dir: string;
  child: ChildProcess;
  /** Times it exited and was started again. */
  restarts: number;
  stopping: boolean;
  output: () => string;
}

const base = mkdtempSync(join(tmpdir(), 'vault-bench-fleet-'));
const rootKeyFile = join(base, 'root.key');
await generateRootKeyFile(rootKeyFile);
// etcd and the server as the chart runs them: transactions of up to 1,024 operations.
const etcd = await startEtcd({ maxTxnOps: 1024 });
const auth = await bootstrap({ store: 'etcd', etcdEndpoints: [etcd.endpoint], rootKeyFile }, 'fleet');
// BENCH_CPU_PROFILE=DIR: a CPU profile of the server, written when it stops.
const server = await startServer(
  [
    ...['--store', 'etcd', '--etcd-endpoints', etcd.endpoint, '--etcd-max-txn-ops', '1024'],
    ...['--root-key-file', rootKeyFile, '--audit-log', 'none'],
  ],
  60_000,
  env.BENCH_CPU_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', env.BENCH_CPU_PROFILE] : [],
);
const admin = await Vault.connect({ addr: server.url, token: auth.token, tenant: auth.tenant });
/** The revocation phase's credential; the expiry phase has its own, so neither sees the other's leases. */
const credential = auth.credentialName;
const expiring = 'fleet-expiring';
await admin.credentials.create({ name: expiring, type: 'password', value: 'fleet-expiring-value' });
const allowLeasing = () =>
  admin.policies.put('fleet', { rules: [{ credentials: [credential, expiring], actions: ['lease'] }] });
await allowLeasing();
// One token per agent, each its own workload identity, as pods of distinct ServiceAccounts log in.
const tokens: string[] = [];
for (let i = 0; i < agentCount; i++) {
  const minted = await admin.tokens.create({
    identity: { type: 'workload', name: `fleet-${i}` },
    policies: ['fleet'],
    ttl: '2h',
  });
  tokens.push(minted.token);
}
const bundle = await bundleAgent();

/**
 * Starts agent `index` on a fresh pod volume; like the kubelet with a sidecar, an agent that
 * exits (a login that timed out on a busy server) is started again on the same volume.
 */
function startAgent(index: number, file: { credential: string; ttl: string; maxTtl?: string }): RunningAgent {
  const dir = podVolume();
  const config = {
    directory: dir,
    healthPort: 0,
    files: Array.from({ length: filesPerAgent }, (_, j) => ({ name: `f${j}`, ...file })),
  };
  let output = '';
  const keep = (chunk: string) => {
    output = (output + chunk).slice(-4_000);
  };
  const agent: RunningAgent = {
    index,
    dir,
    child: undefined as unknown as ChildProcess,
    restarts: 0,
    stopping: false,
    output: () => output,
  };
  const run = () => {
    const child = spawn(
      process.execPath,
      [
        ...agentNodeOptions.split(' '),
        bundle,
        'agent',
        '--config',
        JSON.stringify(config),
        '--health-host',
        '127.0.0.1',
      ],
      {
        cwd: repoRoot,
        uid: agentUid,
        gid: agentUid,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: env.PATH ?? '',
          VAULT_ADDR: server.url,
          VAULT_TOKEN: tokens[index]!,
          VAULT_TENANT: auth.tenant,
          VAULT_LOG_LEVEL: 'warn',
        },
      },
    );
    live.add(child);
    // The agent logs (pino) to stdout.
    child.stdout!.setEncoding('utf8').on('data', keep);
    child.stderr!.setEncoding('utf8').on('data', keep);
    child.once('exit', () => {
      live.delete(child);
      if (agent.stopping) return;
      agent.restarts++;
      setTimeout(run, 1_000);
    });
    agent.child = child;
  };
  run();
  return agent;
}

const present = (agent: RunningAgent) => readdirSync(agent.dir).filter((name) => /^f\d+$/.test(name));

/** Waits until every agent has written every file; the time it took. */
async function allWritten(fleet: RunningAgent[], since: number): Promise<number> {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    const failing = fleet.find((a) => a.restarts >= 5);
    if (failing) throw new Error(`agent ${failing.index} exited 5 times: ${failing.output()}`);
    const written = fleet.reduce((sum, a) => sum + present(a).length, 0);
    if (written === total) return Date.now() - since;
    if (Date.now() > deadline) throw new Error(`only ${written} of ${total} files were written`);
    await sleep(200);
  }
}

/**
 * Watches every agent's directory until every file is gone (or `deadline`); when each file
 * went, per agent (epoch ms).
 */
async function wipes(fleet: RunningAgent[], deadline: number): Promise<Map<number, number[]>> {
  const seen = new Map(fleet.map((a) => [a.index, new Set(present(a))]));
  const gone = new Map<number, number[]>(fleet.map((a) => [a.index, []]));
  let left = fleet.reduce((sum, a) => sum + seen.get(a.index)!.size, 0);
  while (left > 0 && Date.now() < deadline) {
    await sleep(20);
    const now = Date.now();
    for (const agent of fleet) {
      const before = seen.get(agent.index)!;
      if (before.size === 0) continue;
      const after = new Set(present(agent));
      for (const name of before) {
        if (after.has(name)) continue;
        before.delete(name);
        gone.get(agent.index)!.push(now);
        left--;
      }
    }
  }
  if (left > 0) {
    console.error(`${left} files were still present at the deadline; the server's last output:`);
    console.error(server.output().slice(-3_000));
  }
  return gone;
}

async function stopFleet(fleet: RunningAgent[]) {
  await Promise.all(
    fleet.map(
      (a) =>
        new Promise((resolve) => {
          a.stopping = true;
          if (a.child.exitCode !== null) return resolve(undefined);
          a.child.once('exit', resolve);
          a.child.kill('SIGTERM');
        }),
    ),
  );
  for (const a of fleet) rmSync(a.dir, { recursive: true, force: true });
}

const rows: string[] = [];
const report = (row: string) => {
  rows.push(row);
  console.error(row);
};
const restartsOf = (fleet: RunningAgent[]) => fleet.reduce((sum, a) => sum + a.restarts, 0);
console.error(`${agentCount} agents × ${filesPerAgent} files = ${total} leases; load ${load()}`);

// 1. One bulk revocation of every lease of the credential.
{
  const started = Date.now();
  const fleet = Array.from({ length: agentCount }, (_, i) => startAgent(i, { credential, ttl: '1h' }));
  const writtenMs = await allWritten(fleet, started);
  console.error(`revocation fleet: ${total} files written in ${seconds(writtenMs)}; load ${load()}`);
  await sleep(2_000);
  const cpuBefore = cpuSeconds(server.pid);
  const t0 = Date.now();
  const watching = wipes(fleet, t0 + 120_000);
  const revoked = await admin.leases.revokeBulk({ credentialName: credential });
  const callMs = Date.now() - t0;
  const gone = [...(await watching).values()].flat().map((at) => at - t0);
  const cpu = cpuSeconds(server.pid) - cpuBefore;
  report(
    `| bulk revocation of ${revoked.revoked} leases → files wiped (${agentCount} agents, ${gone.length} files) | call ${seconds(callMs)}; wiped p50 ${seconds(quantile(gone, 0.5))}, p99 ${seconds(quantile(gone, 0.99))}, last ${seconds(Math.max(...gone))}; server CPU ${cpu.toFixed(1)} s; agent restarts ${restartsOf(fleet)}; load ${load()} | last ≤ 15 s |`,
  );
  await stopFleet(fleet);
  // Stopped agents revoke their leases (already revoked): let the server finish with them.
  await sleep(10_000);
}

// 2. Expiry: every lease ends at its max TTL, and no new lease is allowed once all are written.
{
  const started = Date.now();
  const endsAt = started + expiryAfterS * 1000;
  const fleet = Array.from({ length: agentCount }, (_, i) => {
    const ttl = `${Math.ceil((endsAt - Date.now()) / 1000)}s`;
    return startAgent(i, { credential: expiring, ttl, maxTtl: ttl });
  });
  const writtenMs = await allWritten(fleet, started);
  await admin.policies.put('fleet', { rules: [{ credentials: ['none-*'], actions: ['lease'] }] });
  const flippedAt = Date.now();
  console.error(`expiry fleet: ${total} files written in ${seconds(writtenMs)}; load ${load()}`);
  const leases: Lease[] = [];
  for await (const lease of admin.leases.all({ credentialName: expiring, state: 'active' }))
    leases.push(lease);
  if (leases.length !== total) console.error(`expected ${total} active leases, found ${leases.length}`);
  // The agent leases again at about 2/3 of a lease's life (at least 0.6): the policy must have
  // changed before the first would, or a lease is replaced instead of running out.
  const firstReplace = Math.min(
    ...leases.map((l) => l.issuedAt.getTime() + 0.6 * (l.expiresAt.getTime() - l.issuedAt.getTime())),
  );
  if (flippedAt > firstReplace)
    console.error('the policy changed after an agent could lease again: raise BENCH_EXPIRY_AFTER');
  const endOf = new Map<number, number>();
  for (const lease of leases) {
    const index = Number(lease.identity.name.slice('fleet-'.length));
    endOf.set(index, Math.max(endOf.get(index) ?? 0, lease.expiresAt.getTime()));
  }
  const ends = leases.map((l) => l.expiresAt.getTime());
  const firstEnd = Math.min(...ends);
  const lastEnd = Math.max(...ends);
  const cpuBefore = cpuSeconds(server.pid);
  const watching = wipes(fleet, lastEnd + 120_000);
  // The API: how long after the last end no lease of the credential is listed as active.
  let apiMs = Number.NaN;
  let apiErrors = 0;
  while (Date.now() < lastEnd + 120_000) {
    await sleep(100);
    if (Date.now() < lastEnd) continue;
    let active = 0;
    try {
      for await (const _ of admin.leases.all({ credentialName: expiring, state: 'active' })) active++;
    } catch (err) {
      // A server too busy to answer (the agents asking for new leases) is part of the result.
      apiErrors++;
      console.error(`listing active leases failed: ${(err as Error).message}`);
      continue;
    }
    if (active === 0) {
      apiMs = Date.now() - lastEnd;
      break;
    }
  }
  const gone = await watching;
  const cpu = cpuSeconds(server.pid) - cpuBefore;
  // Per agent: its last file's wipe after its last lease's end.
  const lag = fleet.map((a) => Math.max(...gone.get(a.index)!) - endOf.get(a.index)!);
  const lastWipe = Math.max(...[...gone.values()].flat());
  report(
    `| ${total} leases ending at their max TTL (ends spread over ${seconds(lastEnd - firstEnd)}) → files wiped | per agent, last file after its last lease's end: p50 ${seconds(quantile(lag, 0.5))}, p99 ${seconds(quantile(lag, 0.99))}, max ${seconds(Math.max(...lag))}; last file ${seconds(lastWipe - lastEnd)} after the last end; API lists none active ${seconds(apiMs)} after it (${apiErrors} list calls failed); server CPU ${cpu.toFixed(1)} s; agent restarts ${restartsOf(fleet)}; load ${load()} | ≤ 15 s |`,
  );
  await stopFleet(fleet);
}

console.log(['| measure | result | goal |', '|---|---|---|', ...rows].join('\n'));
await server.stop();
await etcd.stop();
rmSync(base, { recursive: true, force: true });
process.exit(0);
