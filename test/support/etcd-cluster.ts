/**
 * A real multi-member etcd cluster on loopback for integration tests and benchmarks: N etcd
 * processes with a static initial cluster, each on its own free client, peer and metrics
 * ports and its own data directory. Members can be killed (SIGKILL), restarted on the same
 * data, and asked which of them leads; leadership can be moved on purpose (etcd's MoveLeader,
 * what `etcdctl move-leader` calls). Every process is killed and every directory removed when
 * the test process exits, even if a test forgot to.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { resolveAssets } from './assets.js';
import { freePort, startWatchdog } from './etcd.js';

export interface EtcdMember {
  name: string;
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  /** Whether the process is running (not killed or stopped). */
  running(): boolean;
  /** SIGKILL, as a crash would; resolves once the process is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same ports and data (after kill), and waits until it is healthy. */
  restart(): Promise<void>;
  /**
   * SIGSTOP: the process keeps its sockets open but answers nothing, as a hung member or a
   * pod whose network went away without closing its connections does. `thaw` resumes it.
   */
  freeze(): void;
  thaw(): void;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** Every member's client URL, for `--etcd-endpoints`. */
  endpoints: string[];
  /** The member that leads now, asked of the running members (waits out an election). */
  leader(timeoutMs?: number): Promise<EtcdMember>;
  /** Moves leadership to `target` (asked of the current leader) and waits until it leads. */
  moveLeader(target: EtcdMember): Promise<void>;
  /** Stops every member and removes the data directories. */
  destroy(): Promise<void>;
}

export interface StartEtcdClusterOptions {
  /** How many members (default 3). */
  size?: number;
  /** How long to wait for every member to become healthy. */
  startTimeoutMs?: number;
}

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitHealthy(
  metricsUrl: string,
  proc: ChildProcess,
  stderr: () => string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`etcd exited with ${proc.exitCode ?? proc.signalCode} while starting:\n${stderr()}`);
    }
    try {
      const res = await fetch(`${metricsUrl}/health`, { signal: AbortSignal.timeout(2000) });
      const body = (await res.json()) as { health?: string };
      if (res.ok && body.health === 'true') return;
    } catch {
      // not listening yet, or no leader yet
    }
    await sleep(100);
  }
  throw new Error(`etcd member did not become healthy within ${timeoutMs} ms:\n${stderr()}`);
}

/** The member id (decimal string) a member reports for itself, and the leader it knows. */
async function statusOf(endpoint: string): Promise<{ id: string; leader: string }> {
  const client = new Etcd3({ hosts: [endpoint], dialTimeout: 1_000 });
  try {
    const status = await client.maintenance.status({ deadline: Date.now() + 1_500 });
    return { id: status.header.member_id, leader: status.leader };
  } finally {
    client.close();
  }
}

export async function startEtcdCluster(options: StartEtcdClusterOptions = {}): Promise<EtcdCluster> {
  const size = options.size ?? 3;
  const startTimeoutMs = options.startTimeoutMs ?? 60_000;
  const binary = resolveAssets().etcd;
  const baseDir = mkdtempSync(join(tmpdir(), 'vault-etcd-cluster-'));
  tempDirs.add(baseDir);
  const specs = [];
  for (let i = 0; i < size; i++) {
    const [client, peer, metrics] = [await freePort(), await freePort(), await freePort()];
    specs.push({
      name: `m${i}`,
      endpoint: `http://127.0.0.1:${client}`,
      peer: `http://127.0.0.1:${peer}`,
      metrics: `http://127.0.0.1:${metrics}`,
      dataDir: join(baseDir, `m${i}`),
    });
  }
  const initialCluster = specs.map((s) => `${s.name}=${s.peer}`).join(',');

  const members = specs.map((spec) => {
    let child: ChildProcess | undefined;
    let stderr = '';
    const launch = async () => {
      stderr = '';
      const proc = spawn(
        binary,
        [
          ...['--name', spec.name, '--data-dir', spec.dataDir, '--log-level', 'error'],
          ...['--listen-client-urls', spec.endpoint, '--advertise-client-urls', spec.endpoint],
          ...['--listen-peer-urls', spec.peer, '--initial-advertise-peer-urls', spec.peer],
          ...['--initial-cluster', initialCluster, '--initial-cluster-state', 'new'],
          ...['--initial-cluster-token', 'vault-test'],
          ...['--listen-metrics-urls', spec.metrics],
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      child = proc;
      live.add(proc);
      if (proc.pid !== undefined) startWatchdog(proc.pid, baseDir);
      proc.stderr?.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString()).slice(-4000);
      });
      proc.once('exit', () => live.delete(proc));
      return proc;
    };
    const member: EtcdMember & { launch: typeof launch; healthy: () => Promise<void> } = {
      name: spec.name,
      endpoint: spec.endpoint,
      running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
      launch,
      healthy: () => waitHealthy(spec.metrics, child!, () => stderr, startTimeoutMs),
      async kill() {
        const proc = child;
        if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
        proc.kill('SIGKILL');
        await exited;
      },
      freeze() {
        child?.kill('SIGSTOP');
      },
      thaw() {
        child?.kill('SIGCONT');
      },
      async restart() {
        await member.kill();
        await launch();
        await member.healthy();
      },
    };
    return member;
  });

  // Members of a new cluster wait for each other: start all, then wait for each.
  for (const member of members) await member.launch();
  try {
    await Promise.all(members.map((member) => member.healthy()));
  } catch (err) {
    for (const member of members) await member.kill();
    throw err;
  }

  const leader = async (timeoutMs = 30_000): Promise<EtcdMember> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const member of members.filter((m) => m.running())) {
        try {
          const status = await statusOf(member.endpoint);
          if (status.leader !== '0' && status.leader === status.id) return member;
        } catch {
          // unreachable, or between leaders
        }
      }
      if (Date.now() > deadline) throw new Error(`no etcd member leads after ${timeoutMs} ms`);
      await sleep(100);
    }
  };

  return {
    members,
    endpoints: members.map((m) => m.endpoint),
    leader,
    async moveLeader(target) {
      const targetId = (await statusOf(target.endpoint)).id;
      const current = await leader();
      if (current === target) return;
      const client = new Etcd3({ hosts: [current.endpoint] });
      try {
        await client.maintenance.moveLeader({ targetID: targetId });
      } finally {
        client.close();
      }
      const deadline = Date.now() + 30_000;
      while ((await leader()) !== target) {
        if (Date.now() > deadline) throw new Error(`${target.name} did not take the lead`);
        await sleep(50);
      }
    },
    async destroy() {
      for (const member of members) await member.kill();
      rmSync(baseDir, { recursive: true, force: true });
      tempDirs.delete(baseDir);
    },
  };
}
