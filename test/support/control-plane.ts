/**
 * A real Kubernetes control plane for tests, in the spirit of kubebuilder's envtest: etcd and
 * kube-apiserver as plain processes on free loopback ports, with certificates generated for
 * the run (a CA, the apiserver's serving certificate, an admin client certificate in
 * system:masters, a service-account signing key). There is no kubelet and no
 * controller-manager: pods stay Pending, nothing is garbage-collected and no namespace gets
 * a `default` ServiceAccount unless a test creates one (see `createNamespace`).
 *
 * Everything lives in one work directory and is removed by `stop()`, by the exit and signal
 * handlers of the test process, and, if the process is killed outright, by a small watchdog
 * that outlives it.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig, type VersionInfo } from '@kubernetes/client-node';
import { stringify as toYaml } from 'yaml';
import { type Assets, resolveAssets } from './assets.js';

export type { VersionInfo };

export const serviceAccountIssuer = 'https://kubernetes.default.svc.cluster.local';
/** Audiences the apiserver accepts by default; TokenReview may name others explicitly. */
export const apiAudiences = ['vault', serviceAccountIssuer] as const;

export interface ControlPlaneOptions {
  /**
   * Directory for certificates, etcd data, logs and the kubeconfig. When given it is created
   * if needed and kept after `stop()` (useful to read the logs); by default a fresh temporary
   * directory is used and removed.
   */
  workDir?: string;
  /** Extra kube-apiserver flags, appended after the defaults (a repeated flag wins). */
  apiserverFlags?: string[];
  /** Binaries to run; defaults to `resolveAssets()`. */
  assets?: Assets;
  /** How long to wait for `/readyz`; default 90 s (two shared cores can be slow). */
  startTimeoutMs?: number;
}

export interface CommandOptions {
  /** Written to the command's stdin. */
  input?: string;
  /** Extra environment variables for this call. */
  env?: Record<string, string>;
  /** Kill the command after this long; default 120 s. */
  timeoutMs?: number;
}

export interface CommandResult {
  stdout: string;
  stderr: string;
  /** Exit code; -1 when the command was killed (timeout or signal). */
  code: number;
}

export interface CertificateRequest {
  commonName: string;
  /** Subject organizations; for a client certificate these become the user's groups. */
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  /** `server` (the default) for a TLS server, `client` for client authentication. */
  usage?: 'server' | 'client';
}

export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
}

export interface ControlPlane {
  /** A kubeconfig with the admin client certificate (user in system:masters). */
  readonly kubeconfigPath: string;
  /** The apiserver's URL, `https://127.0.0.1:PORT`. */
  readonly server: string;
  /** PEM of the CA that signed the apiserver's certificate and every issued certificate. */
  readonly caPem: string;
  /** What the apiserver's `/version` returned. */
  readonly serverVersion: VersionInfo;
  /** etcd's client URL (plain HTTP on loopback). */
  readonly etcdEndpoint: string;
  readonly workDir: string;
  /** Runs kubectl against this control plane; never throws on a non-zero exit. */
  kubectl(args: string[], options?: CommandOptions): Promise<CommandResult>;
  /** Runs helm against this control plane, with its caches inside the work directory. */
  helm(args: string[], options?: CommandOptions): Promise<CommandResult>;
  /** A fresh KubeConfig loaded from `kubeconfigPath` (the admin user). */
  kubeConfig(): KubeConfig;
  /** A KubeConfig that authenticates with a bearer token, e.g. a ServiceAccount's. */
  kubeConfigForToken(token: string): KubeConfig;
  /** Issues a certificate signed by the control plane's CA, e.g. for a webhook server. */
  issueCertificate(request: CertificateRequest): Promise<IssuedCertificate>;
  /**
   * Creates a namespace and its `default` ServiceAccount, which the controller-manager
   * would create on a real cluster (the ServiceAccount admission plugin rejects pods whose
   * ServiceAccount does not exist).
   */
  createNamespace(name: string, labels?: Record<string, string>): Promise<void>;
  /**
   * Waits until these CRDs (`vaultleases.vault.ghoststack.io`, ...) are Established; throws
   * with kubectl's message when they do not become so.
   */
  waitForCrds(names: string[]): Promise<void>;
  /** The last `lines` lines of kube-apiserver's log. */
  apiserverLog(lines?: number): string;
  /** Stops kube-apiserver and etcd and removes the work directory (unless it was given). */
  stop(): Promise<void>;
}

export class ControlPlaneStartError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message);
    this.name = 'ControlPlaneStartError';
    if (cause !== undefined) this.cause = cause;
  }
}

const startAttempts = 3;

/** Starts etcd and kube-apiserver and resolves once the apiserver's `/readyz` is ok. */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const assets = options.assets ?? resolveAssets();
  const ownsDir = options.workDir === undefined;
  const workDir = options.workDir ?? (await mkdtemp(join(tmpdir(), 'vault-control-plane-')));
  await mkdir(workDir, { recursive: true });
  const running = trackRun(workDir, ownsDir);
  try {
    const pki = await createPki(workDir);
    // Ports are probed free and then handed to the processes, so another process can take
    // one in between; a bind failure is retried on fresh ports.
    for (let attempt = 1; ; attempt++) {
      try {
        return await startOnce(assets, workDir, pki, running, options);
      } catch (err) {
        await running.killChildren();
        if (!(err instanceof PortInUseError) || attempt >= startAttempts) throw err;
      }
    }
  } catch (err) {
    await running.dispose();
    throw err;
  }
}

/** A bind failure: the port was free when probed but taken by the time the process bound it. */
class PortInUseError extends ControlPlaneStartError {}

async function startOnce(
  assets: Assets,
  workDir: string,
  pki: Pki,
  running: RunningSet,
  options: ControlPlaneOptions,
): Promise<ControlPlane> {
  const [clientPort, peerPort, securePort] = await freePorts(3);
  // A failed attempt's data dir remembers its peer URL; every attempt starts from scratch.
  rmSync(join(workDir, 'etcd-data'), { recursive: true, force: true });
  const etcdEndpoint = `http://127.0.0.1:${clientPort}`;
  const etcdLog = join(workDir, 'etcd.log');
  const etcd = running.spawn(
    assets.etcd,
    [
      '--name=default',
      `--data-dir=${join(workDir, 'etcd-data')}`,
      `--listen-client-urls=${etcdEndpoint}`,
      `--advertise-client-urls=${etcdEndpoint}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      // The data is thrown away after the run; fsync only costs time.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    etcdLog,
    // etcd reads ETCD_* variables as flags; a developer's own settings must not leak in.
    withoutPrefix(process.env, 'ETCD_'),
  );
  await waitFor('etcd', etcd, etcdLog, 30_000, async () => {
    const res = await getUrl(`${etcdEndpoint}/health`);
    return res.status === 200 && res.body.includes('"health":"true"');
  });

  const server = `https://127.0.0.1:${securePort}`;
  const apiserverLogPath = join(workDir, 'kube-apiserver.log');
  const apiserver = running.spawn(
    assets.kubeApiserver,
    [
      `--etcd-servers=${etcdEndpoint}`,
      `--secure-port=${securePort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--cert-dir=${join(workDir, 'apiserver-certs')}`,
      `--tls-cert-file=${pki.files.servingCert}`,
      `--tls-private-key-file=${pki.files.servingKey}`,
      `--client-ca-file=${pki.files.caCert}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      `--service-account-issuer=${serviceAccountIssuer}`,
      `--service-account-key-file=${pki.files.saPublicKey}`,
      `--service-account-signing-key-file=${pki.files.saPrivateKey}`,
      `--api-audiences=${apiAudiences.join(',')}`,
      '--authorization-mode=RBAC',
      '--allow-privileged=true',
      // Neither is needed here and both add work at startup: no kubelet reads the endpoints,
      // and priority and fairness bootstraps its configuration objects before /readyz is ok.
      '--endpoint-reconciler-type=none',
      '--enable-priority-and-fairness=false',
      '--profiling=false',
      ...(options.apiserverFlags ?? []),
    ],
    apiserverLogPath,
    process.env,
  );
  const tls = { ca: pki.caPem, cert: pki.adminCertPem, key: pki.adminKeyPem };
  await waitFor('kube-apiserver', apiserver, apiserverLogPath, options.startTimeoutMs ?? 90_000, async () => {
    const res = await getUrl(`${server}/readyz`, tls);
    return res.status === 200;
  });
  const version = await getUrl(`${server}/version`, tls);
  const serverVersion = JSON.parse(version.body) as VersionInfo;

  const kubeconfigPath = join(workDir, 'kubeconfig');
  await writeFile(kubeconfigPath, adminKubeconfig(server, pki), { mode: 0o600 });
  const toolHome = join(workDir, 'home');
  await mkdir(toolHome, { recursive: true });

  const tool =
    (binary: string) =>
    (args: string[], opts: CommandOptions = {}) =>
      runCommand(binary, args, {
        ...opts,
        env: {
          ...withoutPrefix(withoutPrefix(process.env, 'HELM_'), 'KUBECTL_'),
          // kubectl's discovery cache and helm's repositories stay inside the work directory.
          HOME: toolHome,
          KUBECONFIG: kubeconfigPath,
          HELM_CACHE_HOME: join(toolHome, '.cache', 'helm'),
          HELM_CONFIG_HOME: join(toolHome, '.config', 'helm'),
          HELM_DATA_HOME: join(toolHome, '.local', 'share', 'helm'),
          ...opts.env,
        },
      });

  const kubeConfig = (): KubeConfig => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    return kc;
  };

  return {
    kubeconfigPath,
    server,
    caPem: pki.caPem,
    serverVersion,
    etcdEndpoint,
    workDir,
    kubectl: tool(assets.kubectl),
    helm: tool(assets.helm),
    kubeConfig,
    kubeConfigForToken(token: string): KubeConfig {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'vault-test', server, caData: b64(pki.caPem) }],
        users: [{ name: 'token', token }],
        contexts: [{ name: 'token', cluster: 'vault-test', user: 'token' }],
        currentContext: 'token',
      });
      return kc;
    },
    issueCertificate: (request) => issueCertificate(pki, request),
    async createNamespace(name, labels) {
      const core = kubeConfig().makeApiClient(CoreV1Api);
      await core.createNamespace({ body: { metadata: { name, labels } } });
      await core.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: 'default' } } });
    },
    async waitForCrds(names) {
      // kubectl wait fails at once ("accessor error: <nil>") on a CRD the API server has not
      // given status conditions yet: asked again, it waits.
      for (let attempt = 1; ; attempt++) {
        const waited = await tool(assets.kubectl)([
          'wait',
          '--for=condition=Established',
          '--timeout=60s',
          ...names.map((name) => `crd/${name}`),
        ]);
        if (waited.code === 0) return;
        if (attempt === 10)
          throw new Error(`the CRDs ${names.join(', ')} were not Established: ${waited.stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    },
    apiserverLog: (lines = 50) => tail(apiserverLogPath, lines),
    stop: () => running.dispose(),
  };
}

// ---------------------------------------------------------------------------------------
// Process bookkeeping: every child of every control plane, killed on stop, exit and signals.

interface RunningSet {
  spawn(binary: string, args: string[], logPath: string, env: NodeJS.ProcessEnv): ChildProcess;
  killChildren(): Promise<void>;
  dispose(): Promise<void>;
}

interface RunState {
  workDir: string;
  ownsDir: boolean;
  children: Set<ChildProcess>;
  watchdog: ChildProcess;
  disposed: boolean;
}

const runs = new Set<RunState>();
let handlersInstalled = false;

function trackRun(workDir: string, ownsDir: boolean): RunningSet {
  installProcessHandlers();
  const pidFile = join(workDir, 'pids');
  writeFileSync(pidFile, '');
  const state: RunState = {
    workDir,
    ownsDir,
    children: new Set(),
    watchdog: startWatchdog(pidFile, ownsDir ? workDir : ''),
    disposed: false,
  };
  runs.add(state);
  const writePids = () => {
    if (existsSync(workDir)) writeFileSync(pidFile, [...state.children].map((c) => `${c.pid}\n`).join(''));
  };

  return {
    spawn(binary, args, logPath, env) {
      // Truncated per attempt, so a retry's failure is judged by its own log.
      const log = openSync(logPath, 'w');
      // Detached: a Ctrl-C in the terminal reaches the test process, which stops these in
      // order, instead of killing them behind its back.
      const child = spawn(binary, args, { stdio: ['ignore', log, log], detached: true, env });
      closeSync(log);
      state.children.add(child);
      if (child.pid !== undefined) appendFileSync(pidFile, `${child.pid}\n`);
      child.on('exit', () => {
        state.children.delete(child);
        writePids();
      });
      child.on('error', () => state.children.delete(child));
      return child;
    },
    async killChildren() {
      // The apiserver goes first so that it does not log etcd connection errors on the way out.
      for (const child of [...state.children].reverse()) await terminate(child);
    },
    async dispose() {
      if (state.disposed) return;
      state.disposed = true;
      await this.killChildren();
      state.watchdog.kill('SIGKILL');
      runs.delete(state);
      if (ownsDir) rmSync(workDir, { recursive: true, force: true });
    },
  };
}

/**
 * A shell that outlives a test process killed with SIGKILL (where no handler runs): it
 * polls the parent and, once it is gone, kills the children listed in the pid file and
 * removes the work directory.
 */
function startWatchdog(pidFile: string, dirToRemove: string): ChildProcess {
  const script = [
    'parent=$1; pids=$2; dir=$3',
    'while kill -0 "$parent" 2>/dev/null; do sleep 1; done',
    'for p in $(cat "$pids" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done',
    '[ -n "$dir" ] && rm -rf -- "$dir"',
  ].join('\n');
  const watchdog = spawn('sh', ['-c', script, 'watchdog', String(process.pid), pidFile, dirToRemove], {
    detached: true,
    stdio: 'ignore',
  });
  watchdog.unref();
  return watchdog;
}

function killAllSync(): void {
  for (const run of runs) {
    run.disposed = true;
    for (const child of run.children) child.kill('SIGKILL');
    run.watchdog.kill('SIGKILL');
    if (run.ownsDir) rmSync(run.workDir, { recursive: true, force: true });
  }
  runs.clear();
}

function installProcessHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      // Someone else (the CLI, the test runner) handles the signal and will stop or exit;
      // the exit handler and the watchdog cover the rest.
      if (process.listenerCount(signal) > 1) return;
      killAllSync();
      // Adding a listener disabled Node's default, exiting on the signal; restore it.
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

async function terminate(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------
// Readiness.

async function waitFor(
  name: string,
  child: ChildProcess,
  logPath: string,
  timeoutMs: number,
  ready: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const log = tail(logPath, 40);
      const message = `${name} exited (${child.exitCode ?? child.signalCode}) before it was ready; last lines of its log:\n${log}`;
      throw /address already in use/.test(log)
        ? new PortInUseError(message)
        : new ControlPlaneStartError(message);
    }
    try {
      if (await ready()) return;
    } catch (err) {
      lastError = err;
    }
    await sleep(100);
  }
  throw new ControlPlaneStartError(
    `${name} was not ready after ${timeoutMs} ms; last lines of its log:\n${tail(logPath, 40)}`,
    lastError,
  );
}

interface HttpResult {
  status: number;
  body: string;
}

function getUrl(url: string, tls?: { ca: string; cert: string; key: string }): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = request(url, { method: 'GET', timeout: 5_000, ...tls }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------
// Certificates: keys from node:crypto, certificates signed with the openssl CLI (Node has no
// API to create an X.509 certificate).

interface Pki {
  caPem: string;
  caKeyPem: string;
  adminCertPem: string;
  adminKeyPem: string;
  files: {
    caCert: string;
    caKey: string;
    servingCert: string;
    servingKey: string;
    saPublicKey: string;
    saPrivateKey: string;
  };
}

async function createPki(workDir: string): Promise<Pki> {
  const dir = join(workDir, 'pki');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = {
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    servingCert: join(dir, 'apiserver.crt'),
    servingKey: join(dir, 'apiserver.key'),
    saPublicKey: join(dir, 'sa.pub'),
    saPrivateKey: join(dir, 'sa.key'),
  };
  const caKeyPem = newKeyPem();
  await writeFile(files.caKey, caKeyPem, { mode: 0o600 });
  const caConfig = join(dir, 'ca.cnf');
  await writeFile(
    caConfig,
    opensslConfig({ commonName: 'vault-test-ca' }, [
      'basicConstraints = critical,CA:TRUE',
      'keyUsage = critical,keyCertSign,cRLSign,digitalSignature',
      'subjectKeyIdentifier = hash',
    ]),
  );
  const caPem = await openssl(
    ['req', '-x509', '-new', '-config', caConfig, '-extensions', 'ext', '-key', files.caKey, '-days', '7'],
    '',
  );
  await writeFile(files.caCert, caPem);

  const sa = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await writeFile(files.saPrivateKey, sa.privateKey.export({ type: 'pkcs8', format: 'pem' }), {
    mode: 0o600,
  });
  await writeFile(files.saPublicKey, sa.publicKey.export({ type: 'spki', format: 'pem' }));

  const partial = { caPem, caKeyPem, files };
  const [serving, admin] = await Promise.all([
    issueCertificate(partial, {
      commonName: 'kube-apiserver',
      dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
      ipAddresses: ['127.0.0.1', '10.0.0.1'],
    }),
    issueCertificate(partial, {
      commonName: 'vault-test-admin',
      organizations: ['system:masters'],
      usage: 'client',
    }),
  ]);
  await writeFile(files.servingCert, serving.certPem);
  await writeFile(files.servingKey, serving.keyPem, { mode: 0o600 });
  return { ...partial, adminCertPem: admin.certPem, adminKeyPem: admin.keyPem };
}

async function issueCertificate(
  pki: Pick<Pki, 'caPem' | 'caKeyPem' | 'files'>,
  request: CertificateRequest,
): Promise<IssuedCertificate> {
  const keyPem = newKeyPem();
  const id = randomBytes(6).toString('hex');
  const dir = join(pki.files.caKey, '..');
  const keyFile = join(dir, `${id}.key`);
  const configFile = join(dir, `${id}.cnf`);
  const sans = [
    ...(request.dnsNames ?? []).map((name) => `DNS:${name}`),
    ...(request.ipAddresses ?? []).map((ip) => `IP:${ip}`),
  ];
  const usage = request.usage ?? 'server';
  await writeFile(keyFile, keyPem, { mode: 0o600 });
  await writeFile(
    configFile,
    opensslConfig(request, [
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage = ${usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
      'authorityKeyIdentifier = keyid',
      ...(sans.length > 0 ? [`subjectAltName = ${sans.join(',')}`] : []),
    ]),
  );
  try {
    // Two steps (a CSR, then signing it) also work with LibreSSL, which lacks `req -CA`.
    const csr = await openssl(['req', '-new', '-config', configFile, '-key', keyFile], '');
    const certPem = await openssl(
      [
        'x509',
        '-req',
        '-CA',
        pki.files.caCert,
        '-CAkey',
        pki.files.caKey,
        '-set_serial',
        `0x${randomBytes(8).toString('hex')}`,
        '-days',
        '7',
        '-extfile',
        configFile,
        '-extensions',
        'ext',
      ],
      csr,
    );
    return { certPem, keyPem };
  } finally {
    rmSync(keyFile, { force: true });
    rmSync(configFile, { force: true });
  }
}

function newKeyPem(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function opensslConfig(
  subject: Pick<CertificateRequest, 'commonName' | 'organizations'>,
  ext: string[],
): string {
  const dn = (subject.organizations ?? []).map((o, i) => `${i}.O = ${o}`);
  return [
    '[req]',
    'distinguished_name = dn',
    'prompt = no',
    'utf8 = yes',
    '[dn]',
    ...dn,
    `CN = ${subject.commonName}`,
    '[ext]',
    ...ext,
    '',
  ].join('\n');
}

async function openssl(args: string[], input: string): Promise<string> {
  const result = await runCommand('openssl', args, {
    input,
    env: { ...process.env, OPENSSL_CONF: '/dev/null' },
  });
  if (result.code !== 0)
    throw new ControlPlaneStartError(`openssl ${args[0]} failed: ${result.stderr.trim()}`);
  return result.stdout;
}

function adminKubeconfig(server: string, pki: Pki): string {
  return toYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'vault-test', cluster: { server, 'certificate-authority-data': b64(pki.caPem) } }],
    users: [
      {
        name: 'admin',
        user: { 'client-certificate-data': b64(pki.adminCertPem), 'client-key-data': b64(pki.adminKeyPem) },
      },
    ],
    contexts: [
      { name: 'vault-test', context: { cluster: 'vault-test', user: 'admin', namespace: 'default' } },
    ],
    'current-context': 'vault-test',
  });
}

// ---------------------------------------------------------------------------------------
// Small helpers.

export function runCommand(
  binary: string,
  args: string[],
  options: Omit<CommandOptions, 'env'> & { env?: NodeJS.ProcessEnv },
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(
      binary,
      args,
      {
        env: options.env,
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ stdout, stderr: err && code === -1 ? `${stderr}${err.message}` : stderr, code });
      },
    );
    child.stdin?.on('error', () => {});
    child.stdin?.end(options.input ?? '');
  });
}

function freePorts(count: number): Promise<number[]> {
  // Held open together so that the same port is not handed out twice.
  const servers = Array.from({ length: count }, () => createServer());
  return Promise.all(
    servers.map(
      (srv) =>
        new Promise<number>((resolve, reject) => {
          srv.once('error', reject);
          srv.listen(0, '127.0.0.1', () => {
            const address = srv.address();
            resolve(typeof address === 'object' && address ? address.port : 0);
          });
        }),
    ),
  ).finally(() => Promise.all(servers.map((srv) => new Promise((resolve) => srv.close(resolve)))));
}

function withoutPrefix(env: NodeJS.ProcessEnv, prefix: string): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith(prefix)));
}

function tail(path: string, lines: number): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
