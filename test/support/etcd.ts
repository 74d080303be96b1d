/**
 * Starts a real etcd process for integration tests: free 127.0.0.1 ports, a temporary data
 * directory, optional TLS (a throwaway CA, server and client certificates made with openssl)
 * and optional password auth with a root user. Every process started here is killed, and
 * every directory removed, when the test process exits, even if a test forgot to stop it.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3, type IOptions } from 'etcd3';
import { resolveAssets } from './assets.js';

export interface EtcdTls {
  /** PEM of the CA that signed the server and client certificates. */
  ca: string;
  /** PEM client certificate and key (etcd runs with --client-cert-auth). */
  cert: string;
  key: string;
  /** The same three, as files (for options that take paths). */
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface EtcdAuth {
  username: string;
  password: string;
}

export interface EtcdProcess {
  /** `http://127.0.0.1:PORT`, or `https://...` in TLS mode. */
  endpoint: string;
  dataDir: string;
  tls: EtcdTls | undefined;
  auth: EtcdAuth | undefined;
  /** Graceful stop (SIGTERM); the data directory stays until process exit. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
  /** SIGSTOP: the process keeps its sockets open but answers nothing, like a hung peer. */
  pause(): Promise<void>;
  /** SIGCONT after pause(). */
  resume(): Promise<void>;
  /** Starts it again on the same ports with the same data (after stop or kill, or while running). */
  restart(): Promise<void>;
  /** Stops it and removes its directories. */
  destroy(): Promise<void>;
}

export interface StartEtcdOptions {
  /** Use this data directory instead of a new temporary one (it is not removed). */
  dataDir?: string;
  /** Serve clients over TLS with client-certificate auth, using a throwaway CA. */
  tls?: boolean;
  /** With `tls`: more DNS names for the server certificate (a reader's `etcd-0`), beside 127.0.0.1 and localhost. */
  serverNames?: string[];
  /** Enable etcd auth with a `root` user and this password (or a random one when `true`). */
  auth?: boolean | string;
  /** How long to wait for the process to become healthy. */
  startTimeoutMs?: number;
  /** etcd's `--max-txn-ops` (etcd's default: 128). */
  maxTxnOps?: number;
  /** etcd's `--quota-backend-bytes` (etcd's default: 2 GiB), for benchmarks of a million keys. */
  quotaBackendBytes?: number;
}

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/**
 * If this process dies without running exit handlers (SIGKILL, a killed test worker), a
 * detached shell loop kills the etcd it was watching and removes its directory.
 */
const watchdogScript = `
while kill -0 "$1" 2>/dev/null; do
  kill -0 "$2" 2>/dev/null || exit 0
  sleep 1
done
kill -9 "$2" 2>/dev/null
rm -rf "$3"
`;

export function startWatchdog(etcdPid: number, dir: string): void {
  const watchdog = spawn(
    'sh',
    ['-c', watchdogScript, 'etcd-watchdog', String(process.pid), String(etcdPid), dir],
    {
      detached: true,
      stdio: 'ignore',
    },
  );
  watchdog.unref();
}

process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject()));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function makeCertificates(dir: string, serverNames: string[] = []): EtcdTls {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const file = (name: string) => join(dir, name);
  run(
    ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=vault-test-ca'],
    ...['-keyout', 'ca.key', '-out', 'ca.crt', '-addext', 'basicConstraints=critical,CA:TRUE'],
    ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  );
  const sign = (name: string, cn: string, extensions: string) => {
    writeFileSync(file(`${name}.ext`), extensions);
    run(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${cn}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
    );
    run(
      ...['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial'],
      ...['-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`],
    );
  };
  sign(
    'server',
    'localhost',
    `subjectAltName=${['IP:127.0.0.1', 'DNS:localhost', ...serverNames.map((name) => `DNS:${name}`)].join(',')}\nextendedKeyUsage=serverAuth,clientAuth\n`,
  );
  sign('client', 'root', 'extendedKeyUsage=clientAuth\n');
  return {
    ca: readFileSync(file('ca.crt'), 'utf8'),
    cert: readFileSync(file('client.crt'), 'utf8'),
    key: readFileSync(file('client.key'), 'utf8'),
    caFile: file('ca.crt'),
    certFile: file('client.crt'),
    keyFile: file('client.key'),
  };
}

/** etcd3 client options for a test process (TLS and auth as configured). */
export function etcdClientOptions(etcd: Pick<EtcdProcess, 'endpoint' | 'tls' | 'auth'>): IOptions {
  return {
    hosts: [etcd.endpoint],
    ...(etcd.tls && {
      credentials: {
        rootCertificate: Buffer.from(etcd.tls.ca),
        certChain: Buffer.from(etcd.tls.cert),
        privateKey: Buffer.from(etcd.tls.key),
      },
    }),
    ...(etcd.auth && { auth: { username: etcd.auth.username, password: etcd.auth.password } }),
  };
}

export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdProcess> {
  const binary = resolveAssets().etcd;
  const baseDir = mkdtempSync(join(tmpdir(), 'vault-etcd-'));
  tempDirs.add(baseDir);
  const dataDir = options.dataDir ?? join(baseDir, 'data');
  const tls = options.tls ? makeCertificates(baseDir, options.serverNames) : undefined;
  const [clientPort, peerPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const scheme = tls ? 'https' : 'http';
  const endpoint = `${scheme}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    ...['--name', 'test', '--data-dir', dataDir, '--log-level', 'error'],
    ...['--listen-client-urls', endpoint, '--advertise-client-urls', endpoint],
    ...['--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer],
    ...['--initial-cluster', `test=${peer}`, '--initial-cluster-state', 'new'],
    ...['--listen-metrics-urls', `http://127.0.0.1:${metricsPort}`],
    ...(options.maxTxnOps ? ['--max-txn-ops', String(options.maxTxnOps)] : []),
    ...(options.quotaBackendBytes ? ['--quota-backend-bytes', String(options.quotaBackendBytes)] : []),
    ...(tls
      ? [
          ...['--cert-file', join(baseDir, 'server.crt'), '--key-file', join(baseDir, 'server.key')],
          ...['--trusted-ca-file', tls.caFile, '--client-cert-auth'],
        ]
      : []),
  ];
  const startTimeoutMs = options.startTimeoutMs ?? 60_000;
  let child: ChildProcess | undefined;
  let stderr = '';

  const launch = async (): Promise<void> => {
    stderr = '';
    const proc = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    live.add(proc);
    if (proc.pid !== undefined) startWatchdog(proc.pid, baseDir);
    proc.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    proc.once('exit', () => live.delete(proc));
    const deadline = Date.now() + startTimeoutMs;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`etcd exited with ${proc.exitCode ?? proc.signalCode} while starting:\n${stderr}`);
      }
      try {
        const res = await fetch(`http://127.0.0.1:${metricsPort}/health`, {
          signal: AbortSignal.timeout(2000),
        });
        const body = (await res.json()) as { health?: string };
        if (res.ok && body.health === 'true') return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    proc.kill('SIGKILL');
    throw new Error(`etcd did not become healthy within ${startTimeoutMs} ms:\n${stderr}`);
  };

  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGCONT');
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };

  await launch();

  let auth: EtcdAuth | undefined;
  if (options.auth) {
    auth = {
      username: 'root',
      password: typeof options.auth === 'string' ? options.auth : `pw-${Math.random().toString(36).slice(2)}`,
    };
    const client = new Etcd3(etcdClientOptions({ endpoint, tls, auth: undefined }));
    try {
      await client.role('root').create();
      await client.user(auth.username).create(auth.password);
      await client.user(auth.username).addRole('root');
      await client.auth.authEnable({});
    } finally {
      client.close();
    }
  }

  return {
    endpoint,
    dataDir,
    tls,
    auth,
    stop: () => halt('SIGTERM'),
    pause: async () => {
      child?.kill('SIGSTOP');
    },
    resume: async () => {
      child?.kill('SIGCONT');
    },
    kill: () => halt('SIGKILL'),
    restart: async () => {
      await halt('SIGTERM');
      await launch();
    },
    destroy: async () => {
      await halt('SIGTERM');
      rmSync(baseDir, { recursive: true, force: true });
      tempDirs.delete(baseDir);
    },
  };
}

/**
 * Every key and value in etcd as raw bytes (all revisions' current state), for scans that
 * prove no plaintext reached the store.
 */
export async function dumpEtcd(
  etcd: string | Pick<EtcdProcess, 'endpoint' | 'tls' | 'auth'>,
): Promise<Array<{ key: Buffer; value: Buffer }>> {
  const target = typeof etcd === 'string' ? { endpoint: etcd, tls: undefined, auth: undefined } : etcd;
  const client = new Etcd3(etcdClientOptions(target));
  try {
    const res = await client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
    return res.kvs.map((kv) => ({ key: kv.key, value: kv.value }));
  } finally {
    client.close();
  }
}
