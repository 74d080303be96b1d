/// <reference types="node" />
import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import type { FetchLike } from './http.js';

/**
 * Node only, and loaded only when needed (a CA to trust, or the agent), its node: modules too,
 * so that no file of the SDK imports one statically: the SDK itself runs wherever `fetch` does.
 *
 * The part of `fetch` the SDK uses (method, headers, a string body, a signal; status, headers,
 * `text()`, `json()` and a streamed `body`), on node:http and node:https. The agent uses it
 * instead of Node's fetch: undici compiles a WebAssembly HTTP parser and keeps its own pools,
 * which costs a sidecar several MiB of resident memory for a handful of requests a minute.
 * Connections are kept alive and reused, as fetch would.
 */
export interface NodeFetch {
  fetch: FetchLike;
  /** Closes idle kept-alive connections. */
  close(): void;
}

export interface NodeFetchOptions {
  /** PEM CA bundle trusted for https addresses instead of Node's built-in roots. */
  ca?: string;
}

export function createNodeFetch(options: NodeFetchOptions = {}): NodeFetch {
  const agents = new Map<string, HttpAgent>();

  const agentFor = async (protocol: string): Promise<HttpAgent> => {
    let agent = agents.get(protocol);
    if (!agent) {
      // TLS is loaded only for an https address.
      if (protocol === 'https:') {
        const { Agent } = await import('node:https');
        agent = new Agent({ keepAlive: true, ...(options.ca ? { ca: options.ca } : {}) });
      } else {
        const { Agent } = await import('node:http');
        agent = new Agent({ keepAlive: true });
      }
      agents.set(protocol, agent);
    }
    return agent;
  };

  const fetch = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input);
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new TypeError(`unsupported protocol ${url.protocol}`);
    const signal = init.signal ?? undefined;
    signal?.throwIfAborted();
    const agent = await agentFor(url.protocol);
    const { Readable } = await import('node:stream');
    const toWeb = Readable.toWeb;
    const { request } = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
    const body = init.body === undefined || init.body === null ? undefined : String(init.body);
    const headers: Record<string, string> = { ...(init.headers as Record<string, string> | undefined) };
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));

    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(url, { method: init.method ?? 'GET', headers, agent }, resolve);
      const onAbort = () => req.destroy(signal?.reason as Error);
      signal?.addEventListener('abort', onAbort, { once: true });
      req.once('close', () => signal?.removeEventListener('abort', onAbort));
      req.once('error', reject);
      req.end(body);
    });
    // An abort while the body is read ends the read (the SDK's timeout, or a closed event stream).
    const onAbort = () => res.destroy(signal?.reason as Error);
    signal?.addEventListener('abort', onAbort, { once: true });
    res.once('close', () => signal?.removeEventListener('abort', onAbort));

    const status = res.statusCode ?? 0;
    const text = async (): Promise<string> => {
      let data = '';
      res.setEncoding('utf8');
      for await (const chunk of res) data += chunk as string;
      return data;
    };
    let stream: ReadableStream<Uint8Array> | undefined;
    const response = {
      ok: status >= 200 && status < 300,
      status,
      statusText: res.statusMessage ?? '',
      url: url.href,
      headers: {
        get: (name: string) => {
          const value = res.headers[name.toLowerCase()];
          return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
        },
      },
      text,
      json: async () => JSON.parse(await text()) as unknown,
      get body() {
        stream ??= toWeb(res) as ReadableStream<Uint8Array>;
        return stream;
      },
    };
    return response as unknown as Response;
  };

  return {
    fetch: fetch as FetchLike,
    close() {
      for (const agent of agents.values()) agent.destroy();
      agents.clear();
    },
  };
}

/**
 * Reads the PEM file `VAULT_CACERT` names. A wrong file is one clear error at connect time
 * instead of a TLS failure on the first request.
 */
export async function readCaFile(path: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TypeError(
      `cannot read the CA file ${path} (VAULT_CACERT): ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
    );
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----'))
    throw new TypeError(
      `the CA file ${path} (VAULT_CACERT) is not PEM: it has no "-----BEGIN CERTIFICATE-----" block`,
    );
  return text;
}
