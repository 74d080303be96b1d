import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Histogram, type Registry } from 'prom-client';
import type { Logger } from '../lib/logger.js';
import { type AdmissionDeps, admissionReview, admit, type Outcome, reviewResponse } from './admission.js';

/**
 * The webhook's HTTPS server: POST /mutate (AdmissionReview v1), GET /healthz and /metrics.
 * The serving certificate can be swapped while running (rotation) with `setCertificate`.
 */

export interface WebhookServerOptions extends AdmissionDeps {
  logger: Logger;
  registry: Registry;
  certificate: { certPem: string; keyPem: string };
  host?: string;
  port?: number;
  /** Pods are small; an AdmissionReview above this is refused with 413. */
  maxBodyBytes?: number;
}

export interface WebhookServer {
  readonly port: number;
  readonly url: string;
  setCertificate(certificate: { certPem: string; keyPem: string }): void;
  close(): Promise<void>;
}

export function admissionMetrics(registry: Registry) {
  const existing = registry.getSingleMetric('vault_webhook_admission_duration_seconds');
  if (existing) return existing as Histogram<'outcome'>;
  return new Histogram({
    name: 'vault_webhook_admission_duration_seconds',
    help: 'Time to answer an AdmissionReview, by outcome (patched, unchanged, refused, error, bad_request)',
    labelNames: ['outcome'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
}

/** The request handler on its own, for the server and for the benchmark. */
export function createAdmissionHandler(options: Omit<WebhookServerOptions, 'certificate' | 'host' | 'port'>) {
  const { logger, registry } = options;
  const maxBodyBytes = options.maxBodyBytes ?? 3 * 1024 * 1024;
  const latency = admissionMetrics(registry);

  return (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') {
      send(res, 200, 'text/plain', 'ok');
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      registry.metrics().then(
        (text) => send(res, 200, registry.contentType, text),
        () => send(res, 500, 'text/plain', 'metrics unavailable'),
      );
      return;
    }
    if (req.method !== 'POST' || path !== '/mutate') {
      send(res, 404, 'text/plain', 'not found');
      return;
    }
    const end = latency.startTimer();
    const finish = (outcome: Outcome | 'bad_request') => end({ outcome });
    readBody(req, maxBodyBytes).then(
      async (body) => {
        if (body === undefined) {
          finish('bad_request');
          send(res, 413, 'text/plain', `an AdmissionReview is at most ${maxBodyBytes} bytes`);
          return;
        }
        let parsed: ReturnType<typeof admissionReview.safeParse>;
        try {
          parsed = admissionReview.safeParse(JSON.parse(body));
        } catch {
          parsed = { success: false } as ReturnType<typeof admissionReview.safeParse>;
        }
        if (!parsed.success) {
          finish('bad_request');
          send(res, 400, 'text/plain', 'expected an admission.k8s.io/v1 AdmissionReview');
          return;
        }
        const { response, outcome } = await admit(parsed.data, options);
        finish(outcome);
        const request = parsed.data.request;
        const log = { uid: request.uid, namespace: request.namespace, outcome, operation: request.operation };
        if (outcome === 'refused' || outcome === 'error')
          logger.warn({ ...log, reason: response.status?.message }, 'admission refused');
        else logger.debug(log, 'admission');
        send(res, 200, 'application/json', JSON.stringify(reviewResponse(response)));
      },
      (err: unknown) => {
        finish('error');
        logger.warn({ err }, 'reading an admission request failed');
        if (!res.headersSent) send(res, 400, 'text/plain', 'bad request');
      },
    );
  };
}

export async function startWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const handler = createAdmissionHandler(options);
  const server: Server = createServer(
    { cert: options.certificate.certPem, key: options.certificate.keyPem },
    handler,
  );
  // An admission call times out after at most 10 s on the API server's side.
  server.requestTimeout = 15_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    port: address.port,
    url: `https://${host}:${address.port}/mutate`,
    setCertificate(certificate) {
      server.setSecureContext({ cert: certificate.certPem, key: certificate.keyPem });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body);
}

/** Resolves undefined when the body exceeds the limit (and stops reading it). */
function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      req.resume();
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
