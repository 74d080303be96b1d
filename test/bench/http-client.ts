/**
 * A minimal JSON client over node:http with a keep-alive agent (no dependency beyond Node):
 * one socket per concurrent caller, reused across requests, as a real client pool would.
 */
import { Agent, request } from 'node:http';

export interface JsonResponse {
  status: number;
  body: unknown;
}

export interface JsonClient {
  request(method: string, path: string, body?: unknown): Promise<JsonResponse>;
  close(): void;
}

export function jsonClient(
  baseUrl: string,
  options: { token?: string; maxSockets?: number; timeoutMs?: number } = {},
): JsonClient {
  const agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 16 });
  const base = new URL(baseUrl);
  return {
    request(method, path, body) {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      return new Promise((resolve, reject) => {
        const req = request(
          {
            agent,
            host: base.hostname,
            port: base.port,
            method,
            path,
            timeout: options.timeoutMs ?? 30_000,
            headers: {
              ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
              ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('error', reject);
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              let parsed: unknown = text;
              try {
                parsed = text ? JSON.parse(text) : undefined;
              } catch {
                // not JSON: keep the text
              }
              resolve({ status: res.statusCode ?? 0, body: parsed });
            });
          },
        );
        req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
        req.on('error', reject);
        req.end(payload);
      });
    },
    close: () => agent.destroy(),
  };
}
