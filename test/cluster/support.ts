/**
 * Helpers for the end-to-end scenarios on the real cluster: the chart installed as a platform
 * team installs it, the Vault API reached from the host through `kubectl port-forward` with
 * the chart's CA, and pods observed from the inside with `kubectl exec`.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import type { Cluster, PortForward } from '../support/cluster.js';

export const release = 'vault';
export const vaultNamespace = 'vault-system';

/** Values of the e2e install: only what points the chart at images this cluster has. */
export const installValues = {
  'image.repository': 'ghcr.io/ghoststack/vault',
  'image.tag': 'e2e',
  'image.pullPolicy': 'Never',
  'etcd.image.repository': 'docker.io/local/etcd',
  'etcd.image.tag': '3.6',
  'etcd.image.pullPolicy': 'Never',
  'etcd.persistence.size': '1Gi',
};

/** The node's address on the cluster's bridge (cluster.sh's GW): pods reach the node there. */
export const nodeIp = '10.88.0.1';
export const podCidr = '10.88.0.0/24';

/**
 * The cluster's network namespace, held by cluster.sh's sleeping `ns` process: a server started
 * in it with `nsenter --net=...` listens where pods reach it (`nodeIp`), as a database on the
 * node's network would.
 */
export function clusterNetns(cluster: Cluster): string {
  const pid = readFileSync(join(cluster.runDir, 'pids', 'ns.pid'), 'utf8').trim();
  return `/proc/${pid}/ns/net`;
}

/**
 * The Kubernetes objects of the one ```yaml block of a docs page that contains `marker`, so a
 * scenario applies exactly what the page shows (test/operator/documented-examples.test.ts
 * checks the same block against the CRDs' schemas).
 */
export function documentedObjects(
  page: string,
  marker: string,
): { kind: string; [field: string]: unknown }[] {
  const text = readFileSync(new URL(`../../docs/${page}`, import.meta.url), 'utf8');
  const blocks = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => m[1] ?? '')
    .filter((b) => b.includes(marker));
  if (blocks.length !== 1) throw new Error(`docs/${page}: ${blocks.length} yaml blocks contain ${marker}`);
  return parseAllDocuments(blocks[0]!).map((doc) => doc.toJS());
}

export async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined | false>,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `${what}: not after ${timeoutMs} ms${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`,
  );
}

export async function apply(cluster: Cluster, objects: object[]): Promise<void> {
  await cluster.k(['apply', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });
}

export interface ApiResponse {
  status: number;
  body: any;
}

/** The Vault API from the host: a port-forward to the chart's Service, trusting its CA. */
export class VaultApi {
  private constructor(
    private readonly forward: PortForward,
    readonly ca: string,
    public token = '',
    public tenant = '',
  ) {}

  static async open(cluster: Cluster): Promise<VaultApi> {
    const ca = Buffer.from(
      await cluster.k([
        '-n',
        vaultNamespace,
        'get',
        'secret',
        `${release}-server-tls`,
        '-o',
        'jsonpath={.data.ca\\.crt}',
      ]),
      'base64',
    ).toString();
    const forward = await cluster.portForward(vaultNamespace, `svc/${release}`, 8200);
    return new VaultApi(forward, ca);
  }

  get addr(): string {
    return `https://127.0.0.1:${this.forward.port}`;
  }

  call(method: string, path: string, body?: unknown, token = this.token): Promise<ApiResponse> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.addr}${path}`,
        {
          method,
          ca: this.ca,
          servername: `${release}.${vaultNamespace}.svc`,
          headers: {
            authorization: `Bearer ${token}`,
            ...(this.tenant ? { 'x-vault-tenant': this.tenant } : {}),
            ...(payload ? { 'content-type': 'application/json' } : {}),
          },
          timeout: 30_000,
        },
        (res) => {
          let text = '';
          res.on('data', (c) => {
            text += c;
          });
          res.on('end', () => {
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {}
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  async ok(method: string, path: string, body?: unknown): Promise<any> {
    const res = await this.call(method, path, body);
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  close(): void {
    this.forward.close();
  }
}

/** The first pod (name) of a selector, once it is Running and Ready. */
export async function readyPod(cluster: Cluster, namespace: string, selector: string, timeoutMs = 180_000) {
  return until(`a Ready pod for ${selector} in ${namespace}`, timeoutMs, async () => {
    const out = await cluster.k(['-n', namespace, 'get', 'pods', '-l', selector, '-o', 'json']);
    const pods = JSON.parse(out).items as any[];
    const ready = pods.find(
      (p) =>
        !p.metadata.deletionTimestamp &&
        p.status?.phase === 'Running' &&
        p.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'),
    );
    return ready?.metadata.name as string | undefined;
  });
}

/** Runs a shell script inside a container; returns stdout, throws with stderr on failure. */
export function execIn(
  cluster: Cluster,
  namespace: string,
  pod: string,
  container: string,
  script: string,
  timeoutMs = 60_000,
): Promise<string> {
  return cluster.k(['-n', namespace, 'exec', pod, '-c', container, '--', 'sh', '-c', script], { timeoutMs });
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}
