/**
 * A small REST client for the Kubernetes API: JSON requests and streaming watches over one
 * keep-alive agent, authenticated from a client-node KubeConfig (certificates, bearer tokens,
 * token files). The controller needs a handful of verbs on a handful of resources; a thin,
 * typed layer over HTTP is easier to reason about (and to count writes on) than the
 * generated clients.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { createInterface } from 'node:readline';
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeObject } from './resources.js';

/** A resource type: `/apis/{group}/{version}/namespaces/{ns}/{plural}` (or `/api/v1/...` for the core group). */
export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
}

export const resourceTypes = {
  vaultCredentials: {
    group: 'vault.ghoststack.io',
    version: 'v1alpha1',
    plural: 'vaultcredentials',
    namespaced: true,
  },
  vaultLeases: { group: 'vault.ghoststack.io', version: 'v1alpha1', plural: 'vaultleases', namespaced: true },
  secrets: { group: '', version: 'v1', plural: 'secrets', namespaced: true },
  leases: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespaced: true },
  events: { group: 'events.k8s.io', version: 'v1', plural: 'events', namespaced: true },
} as const satisfies Record<string, ResourceType>;

export class KubeApiError extends Error {
  readonly statusCode: number;
  readonly reason: string | undefined;
  readonly body: unknown;
  constructor(statusCode: number, message: string, reason?: string, body?: unknown) {
    super(message);
    this.name = 'KubeApiError';
    this.statusCode = statusCode;
    this.reason = reason;
    this.body = body;
  }
}

export const isStatus = (err: unknown, code: number): boolean =>
  err instanceof KubeApiError && err.statusCode === code;

export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export interface WatchHandle {
  /** Resolves when the stream ends: null on a clean close, the error otherwise. */
  done: Promise<Error | null>;
  abort(): void;
}

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';

export interface KubeClient {
  get<T = KubeObject>(type: ResourceType, namespace: string | undefined, name: string): Promise<T>;
  list<T = KubeObject>(
    type: ResourceType,
    options?: { namespace?: string; labelSelector?: string },
  ): Promise<ListResult<T>>;
  create<T = KubeObject>(type: ResourceType, namespace: string | undefined, body: unknown): Promise<T>;
  replace<T = KubeObject>(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    body: unknown,
  ): Promise<T>;
  /** A JSON merge patch (RFC 7386), on the object or on its status subresource. */
  mergePatch<T = KubeObject>(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    patch: unknown,
    options?: { subresource?: 'status' },
  ): Promise<T>;
  /** A JSON patch (RFC 6902), e.g. with a `test` op guarding a finalizer list. */
  jsonPatch<T = KubeObject>(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    ops: unknown[],
  ): Promise<T>;
  delete(type: ResourceType, namespace: string | undefined, name: string): Promise<void>;
  watch<T = KubeObject>(
    type: ResourceType,
    options: { namespace?: string; resourceVersion: string; timeoutSeconds?: number; labelSelector?: string },
    onEvent: (event: WatchEvent<T>) => void,
  ): Promise<WatchHandle>;
  /** Called for every request after it completes (for metrics and the write counters in tests). */
  onRequest?: (verb: Verb, type: ResourceType, statusCode: number) => void;
  close(): void;
}

export function resourcePath(
  type: ResourceType,
  namespace?: string,
  name?: string,
  subresource?: string,
): string {
  const base = type.group ? `/apis/${type.group}/${type.version}` : `/api/${type.version}`;
  const ns = type.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  const tail = name ? `/${encodeURIComponent(name)}${subresource ? `/${subresource}` : ''}` : '';
  return `${base}${ns}/${type.plural}${tail}`;
}

interface Transport {
  options(): Promise<RequestOptions>;
  secure: boolean;
  base: URL;
  agent: HttpAgent;
  /** Watches hold their connection for minutes; they get their own pool. */
  watchAgent: HttpAgent;
}

async function transportFor(kc: KubeConfig): Promise<Transport> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig names no current cluster');
  const base = new URL(cluster.server);
  const secure = base.protocol === 'https:';
  const initial: RequestOptions = {};
  await kc.applyToHTTPSOptions(initial);
  const tls = {
    ca: initial.ca,
    cert: initial.cert,
    key: initial.key,
    rejectUnauthorized: initial.rejectUnauthorized,
  };
  const makeAgent = (keepAlive: boolean) =>
    secure
      ? new HttpsAgent({
          keepAlive,
          maxSockets: keepAlive ? 32 : Number.POSITIVE_INFINITY,
          ...tls,
          servername: cluster.tlsServerName,
        })
      : new HttpAgent({ keepAlive, maxSockets: keepAlive ? 32 : Number.POSITIVE_INFINITY });
  const agent = makeAgent(true);
  const watchAgent = makeAgent(false);
  return {
    secure,
    base,
    agent,
    watchAgent,
    async options() {
      // Re-read per request: bearer tokens from files (projected tokens) rotate.
      const opts: RequestOptions = {};
      await kc.applyToHTTPSOptions(opts);
      return { headers: { ...(opts.headers as Record<string, string>) } };
    },
  };
}

export async function createKubeClient(kc: KubeConfig): Promise<KubeClient> {
  const transport = await transportFor(kc);
  const send = transport.secure ? httpsRequest : httpRequest;

  async function open(
    method: string,
    path: string,
    body?: unknown,
    contentType?: string,
    agent: HttpAgent = transport.agent,
  ): Promise<IncomingMessage> {
    const auth = await transport.options();
    const url = new URL(path, transport.base);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = send(
        url,
        {
          method,
          agent,
          headers: {
            ...auth.headers,
            accept: 'application/json',
            ...(payload
              ? { 'content-type': contentType ?? 'application/json', 'content-length': payload.length }
              : {}),
          },
        },
        resolve,
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  async function call<T>(
    verb: Verb,
    type: ResourceType,
    method: string,
    path: string,
    body?: unknown,
    ct?: string,
  ) {
    let res: IncomingMessage;
    try {
      res = await open(method, path, body, ct);
    } catch (err) {
      client.onRequest?.(verb, type, 0);
      throw err;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const status = res.statusCode ?? 0;
    client.onRequest?.(verb, type, status);
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    if (status < 200 || status >= 300) {
      const s = parsed as { message?: string; reason?: string } | undefined;
      throw new KubeApiError(
        status,
        `${method} ${path}: ${status} ${s?.message ?? text.slice(0, 200)}`,
        s?.reason,
        parsed,
      );
    }
    return parsed as T;
  }

  const query = (params: Record<string, string | number | undefined>) => {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(params))
      if (value !== undefined) search.set(key, String(value));
    const text = search.toString();
    return text ? `?${text}` : '';
  };

  const client: KubeClient = {
    get: (type, namespace, name) => call('get', type, 'GET', resourcePath(type, namespace, name)),
    async list<T>(type: ResourceType, options: { namespace?: string; labelSelector?: string } = {}) {
      const items: T[] = [];
      let resourceVersion = '';
      let cont: string | undefined;
      do {
        const page = await call<{ items: T[]; metadata: { resourceVersion: string; continue?: string } }>(
          'list',
          type,
          'GET',
          resourcePath(type, options.namespace) +
            query({ limit: 500, continue: cont, labelSelector: options.labelSelector }),
        );
        items.push(...page.items);
        resourceVersion = page.metadata.resourceVersion;
        cont = page.metadata.continue || undefined;
      } while (cont);
      return { items, resourceVersion };
    },
    create: (type, namespace, body) => call('create', type, 'POST', resourcePath(type, namespace), body),
    replace: (type, namespace, name, body) =>
      call('update', type, 'PUT', resourcePath(type, namespace, name), body),
    mergePatch: (type, namespace, name, patch, options) =>
      call(
        'patch',
        type,
        'PATCH',
        resourcePath(type, namespace, name, options?.subresource),
        patch,
        'application/merge-patch+json',
      ),
    jsonPatch: (type, namespace, name, ops) =>
      call('patch', type, 'PATCH', resourcePath(type, namespace, name), ops, 'application/json-patch+json'),
    async delete(type, namespace, name) {
      await call('delete', type, 'DELETE', resourcePath(type, namespace, name));
    },
    async watch<T>(
      type: ResourceType,
      options: {
        namespace?: string;
        resourceVersion: string;
        timeoutSeconds?: number;
        labelSelector?: string;
      },
      onEvent: (event: WatchEvent<T>) => void,
    ): Promise<WatchHandle> {
      const path =
        resourcePath(type, options.namespace) +
        query({
          watch: 1,
          allowWatchBookmarks: 'true',
          resourceVersion: options.resourceVersion,
          timeoutSeconds: options.timeoutSeconds,
          labelSelector: options.labelSelector,
        });
      const res = await open('GET', path, undefined, undefined, transport.watchAgent);
      client.onRequest?.('watch', type, res.statusCode ?? 0);
      if (res.statusCode !== 200) {
        const chunks: Buffer[] = [];
        for await (const chunk of res) chunks.push(chunk as Buffer);
        const text = Buffer.concat(chunks).toString('utf8');
        throw new KubeApiError(res.statusCode ?? 0, `watch ${path}: ${res.statusCode} ${text.slice(0, 200)}`);
      }
      const lines = createInterface({ input: res, crlfDelay: Number.POSITIVE_INFINITY });
      const done = new Promise<Error | null>((resolve) => {
        let settled = false;
        const finish = (err: Error | null) => {
          if (settled) return;
          settled = true;
          resolve(err);
        };
        res.on('error', (err) => finish(err));
        res.on('aborted', () => finish(new Error('watch connection aborted')));
        lines.on('close', () => finish(null));
      });
      lines.on('line', (line) => {
        if (!line.trim()) return;
        let event: WatchEvent<T>;
        try {
          event = JSON.parse(line) as WatchEvent<T>;
        } catch {
          return;
        }
        onEvent(event);
      });
      return {
        done,
        abort: () => res.destroy(),
      };
    },
    close: () => {
      transport.agent.destroy();
      transport.watchAgent.destroy();
    },
  };
  return client;
}
