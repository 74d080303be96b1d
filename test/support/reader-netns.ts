/**
 * A machine of the reader's own for documented commands: a network namespace with nothing but
 * its own loopback, so a page's fixed ports (`--listen 0.0.0.0:8200`, `--health-port 8099`) are
 * free as on a reader's laptop and reach nothing else on the CI machine, and a mount namespace
 * whose `/etc/hosts` is a file of its own, so the host names a page uses (`etcd-0`) resolve to
 * services the test provides. Services of the host are relayed in with `forward` (a relay inside
 * listens on 127.0.0.1, joined through a Unix socket to one outside that connects to the host's
 * port: path names are not scoped by network namespaces). Run commands in it with `prefix`.
 * Needs root (unshare, nsenter, a bind mount inside the new mount namespace only).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand } from './control-plane.js';

const relay = fileURLToPath(new URL('relay.mjs', import.meta.url));

// The namespace holders and relays of every namespace not stopped yet, ended when the test
// process exits (they are not its process group's, so nothing else would end them).
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface ReaderNetns {
  /** `nsenter ...`: put it before a command to run that command in the namespaces. */
  prefix: string[];
  /** Its own `/etc/hosts` (host names to add for the pages). */
  hostsFile: string;
  /** Relays 127.0.0.1:insidePort (default: the same port) in the namespace to the host's 127.0.0.1:hostPort. */
  forward(hostPort: number, insidePort?: number): Promise<void>;
  stop(): Promise<void>;
}

async function bash(script: string): Promise<void> {
  const result = await runCommand('bash', ['-euo', 'pipefail', '-c', script], {
    timeoutMs: 60_000,
    env: process.env as Record<string, string>,
  });
  if (result.code !== 0) throw new Error(`${script.split('\n')[0]}: ${result.stderr.slice(-3000)}`);
}

export async function startReaderNetns(): Promise<ReaderNetns> {
  const dir = mkdtempSync(join(tmpdir(), 'vault-reader-netns-'));
  const hostsFile = join(dir, 'hosts');
  writeFileSync(hostsFile, readFileSync('/etc/hosts', 'utf8'));
  // --propagation private (unshare's default): the bind mount below stays in the new namespace.
  const holder = spawn(
    'unshare',
    ['--net', '--mount', '--propagation', 'private', '--', 'sleep', 'infinity'],
    {
      detached: true,
      stdio: 'ignore',
    },
  );
  const processes: ChildProcess[] = [holder];
  live.add(holder);
  const stop = async () => {
    for (const child of processes.reverse()) {
      child.kill('SIGKILL');
      live.delete(child);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ns = (kind: string) => `/proc/${holder.pid}/ns/${kind}`;
    await bash(
      `for i in $(seq 1 50); do [ "$(readlink ${ns('net')})" != "$(readlink /proc/self/ns/net)" ] && exit 0; sleep 0.1; done; exit 1`,
    );
    await bash(`nsenter --net=${ns('net')} ip link set lo up`);
    await bash(`nsenter --mount=${ns('mnt')} mount --bind '${hostsFile}' /etc/hosts`);
    const prefix = ['nsenter', `--net=${ns('net')}`, `--mount=${ns('mnt')}`];
    let relays = 0;
    return {
      prefix,
      hostsFile,
      async forward(hostPort, insidePort = hostPort) {
        const socket = join(dir, `relay-${++relays}.sock`);
        const outside = spawn(process.execPath, [relay, `unix:${socket}`, `tcp:127.0.0.1:${hostPort}`], {
          stdio: 'ignore',
        });
        const inside = spawn(
          'nsenter',
          [`--net=${ns('net')}`, process.execPath, relay, `tcp:127.0.0.1:${insidePort}`, `unix:${socket}`],
          { stdio: 'ignore' },
        );
        processes.push(outside, inside);
        live.add(outside).add(inside);
        await bash(
          `for i in $(seq 1 100); do [ -S '${socket}' ] && nsenter --net=${ns('net')} bash -c ': < /dev/tcp/127.0.0.1/${insidePort}' 2>/dev/null && exit 0; sleep 0.1; done; exit 1`,
        );
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
