/**
 * Runs what the chart renders as local processes, where no kubelet can: a container's own
 * args and env, with in-cluster names, ports and mount paths swapped for local ones.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { resolveAssets } from '../support/assets.js';
import { find, type K8sObject, podTemplate, repoRoot } from './support.js';

export const b64 = (text: string) => Buffer.from(text, 'base64');

export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  const ports = await Promise.all(
    servers.map(
      (server) =>
        new Promise<number>((resolve, reject) => {
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => {
            const address = server.address();
            resolve(typeof address === 'object' && address ? address.port : 0);
          });
        }),
    ),
  );
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** Writes a Secret's data as files, as a Secret volume would. */
export function writeSecretFiles(secret: K8sObject, dir: string): void {
  for (const [key, value] of Object.entries(secret.data as Record<string, string>)) {
    writeFileSync(join(dir, key), b64(value), { mode: 0o600 });
  }
}

/** Applies every `[from, to]` replacement to every argument. */
export function localize(args: string[], replacements: Array<[string, string]>): string[] {
  return args.map((arg) => replacements.reduce((text, [from, to]) => text.replaceAll(from, to), arg));
}

/** A container's env as a process env: values, Secret references resolved, fieldRefs given. */
export function containerEnv(
  container: K8sObject,
  secrets: K8sObject[],
  fields: Record<string, string>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of (container.env ?? []) as K8sObject[]) {
    if (entry.value !== undefined) env[entry.name] = entry.value;
    else if (entry.valueFrom?.secretKeyRef) {
      const ref = entry.valueFrom.secretKeyRef;
      env[entry.name] = b64(find(secrets, 'Secret', ref.name).data[ref.key]).toString('utf8');
    } else if (entry.valueFrom?.fieldRef) {
      const value = fields[entry.valueFrom.fieldRef.fieldPath];
      if (value === undefined) throw new Error(`no value for fieldRef ${entry.valueFrom.fieldRef.fieldPath}`);
      env[entry.name] = value;
    }
  }
  return env;
}

export interface LocalProcess {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

export function startProcess(binary: string, args: string[], env: NodeJS.ProcessEnv): LocalProcess {
  const child = spawn(binary, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  return {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls `check` until true; fails with what it waited for and the process output. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  processes: LocalProcess[] = [],
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const p of processes) {
      if (p.child.exitCode !== null)
        throw new Error(`exited (${p.child.exitCode}) before ${what}:\n${p.output().slice(-3000)}`);
    }
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}:\n${processes.map((p) => p.output().slice(-3000)).join('\n---\n')}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export interface LocalEtcd {
  clientUrl: string;
  metricsUrl: string;
  process: LocalProcess;
}

/**
 * The bundled etcd's single member (render with `etcd.replicas: 1`), run with the
 * StatefulSet's own command line and the chart's member certificate, in `dir`.
 */
export async function startChartEtcd(
  objects: K8sObject[],
  dir: string,
  namespace = 'vault',
): Promise<LocalEtcd> {
  writeSecretFiles(find(objects, 'Secret', `vault-etcd-tls`), dir);
  const container = podTemplate(find(objects, 'StatefulSet', 'vault-etcd')).spec.containers[0];
  const [clientPort, peerPort, metricsPort] = await freePorts(3);
  const args = localize(container.args, [
    [`$(POD_NAME).vault-etcd.${namespace}.svc`, '127.0.0.1'],
    [`vault-etcd-0.vault-etcd.${namespace}.svc`, '127.0.0.1'],
    ['$(POD_NAME)', 'vault-etcd-0'],
    ['0.0.0.0', '127.0.0.1'],
    [':2379', `:${clientPort}`],
    [':2380', `:${peerPort}`],
    [':2381', `:${metricsPort}`],
    ['/etc/etcd/tls', dir],
    ['/var/lib/etcd', join(dir, 'var')],
  ]);
  if (/svc|\/etc\/etcd|\/var\/lib/.test(args.join(' ')))
    throw new Error(`unlocalized etcd args: ${args.join(' ')}`);
  const etcd = startProcess(resolveAssets().etcd, args, { PATH: process.env.PATH });
  const metricsUrl = `http://127.0.0.1:${metricsPort}`;
  await waitUntil('etcd to be ready', async () => (await fetch(`${metricsUrl}/readyz`)).ok, [etcd]);
  return { clientUrl: `https://127.0.0.1:${clientPort}`, metricsUrl, process: etcd };
}

/**
 * One HTTPS request that trusts only `ca` and checks the certificate against `servername`
 * (the in-cluster name the chart gives out), while connecting to 127.0.0.1.
 */
export function httpsCall(
  url: string,
  options: {
    ca: Buffer;
    servername: string;
    method?: string;
    body?: unknown;
    headers?: Record<string, string>;
  },
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        ca: options.ca,
        servername: options.servername,
        timeout: 5_000,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...options.headers,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Sends a pod's CREATE to the webhook at `url` as the kube-apiserver would, checks it was
 * allowed, and returns the agent container the webhook's patch adds (the first init container).
 */
export async function injectedAgent(
  url: string,
  tls: { ca: Buffer; servername: string },
  pod: { name: string; namespace: string; annotations: Record<string, string>; serviceAccountName?: string },
): Promise<K8sObject> {
  const review = await httpsCall(url, {
    ...tls,
    method: 'POST',
    body: {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: `e1b7c1de-0000-4000-8000-${Date.now().toString().padStart(12, '0').slice(-12)}`,
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        namespace: pod.namespace,
        operation: 'CREATE',
        userInfo: { username: 'test' },
        object: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name: pod.name,
            namespace: pod.namespace,
            labels: { 'vault.ghoststack.io/inject': 'true' },
            annotations: pod.annotations,
          },
          spec: {
            ...(pod.serviceAccountName ? { serviceAccountName: pod.serviceAccountName } : {}),
            containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
          },
        },
      },
    },
  });
  if (review.status !== 200) throw new Error(`the webhook answered ${review.status}: ${review.text}`);
  const response = JSON.parse(review.text).response;
  if (response.allowed !== true) throw new Error(`the webhook refused the pod: ${review.text}`);
  const patch = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Array<{
    path: string;
    value: unknown;
  }>;
  const added = patch.find((op) => op.path === '/spec/initContainers');
  if (!added) throw new Error(`no agent in the patch: ${JSON.stringify(patch)}`);
  return (added.value as K8sObject[])[0]!;
}

/**
 * Starts a Deployment's first container as a `vault` process: its rendered args and env, with
 * `replacements` applied to both (Secret references resolved from `objects`), plus `env`.
 */
export function startContainer(
  objects: K8sObject[],
  deployment: string,
  options: {
    namespace: string;
    replacements: Array<[string, string]>;
    env: Record<string, string>;
    home: string;
  },
): LocalProcess {
  const container = podTemplate(find(objects, 'Deployment', deployment)).spec.containers[0];
  const rendered = containerEnv(container, objects, {
    'metadata.name': `${deployment}-0`,
    'metadata.namespace': options.namespace,
  });
  const env = {
    PATH: process.env.PATH,
    HOME: options.home,
    ...Object.fromEntries(
      Object.entries(rendered).map(([name, value]) => [
        name,
        localize([value], options.replacements)[0] as string,
      ]),
    ),
    ...options.env,
  };
  return startProcess(
    process.execPath,
    [join(repoRoot, 'bin', 'vault.js'), ...localize(container.args, options.replacements)],
    env,
  );
}
