import { readFile } from 'node:fs/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { createKubeClient, isStatus } from '../k8s/api-client.js';
import { loadKubernetesClient } from '../k8s/client-module.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { createCertRotator, defaultRotationPolicy, type KeyPairPem } from './certs.js';
import { webhookConfiguration } from './configuration.js';
import {
  createCaBundlePublisher,
  createLeaseAccessChecker,
  createLeaseChecker,
  createSecretCertStore,
  mutatingWebhookConfigurations,
} from './kube.js';
import { type MutateConfig, systemNamespaces } from './mutate.js';
import { startWebhookServer, type WebhookServer } from './server.js';

/**
 * Wires the webhook: detect the cluster version, obtain a serving certificate (self-managed
 * in a Secret, or files from cert-manager), serve, optionally install the
 * MutatingWebhookConfiguration, and keep the certificate current.
 */

export interface WebhookRunOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  host: string;
  port: number;
  mutate: Omit<MutateConfig, 'serverVersion' | 'namespacesRefused'>;
  configurationName: string;
  /** Self-managed TLS: the Secret and the names the certificate covers. */
  certSecret: string;
  dnsNames: string[];
  ipAddresses: string[];
  /** cert-manager (or any external issuer): read these files instead, re-read hourly. */
  tlsFiles?: { cert: string; key: string };
  /** Create or update the configuration itself, pointing at this URL or Service. */
  install?: { url?: string; service?: { name: string; namespace: string; port?: number } };
  checkLeases: boolean;
  /** The ClusterRole that grants `get` on VaultLeases, named in refusals (default `vault-vaultlease-reader`). */
  leaseReaderRole?: string;
  clock: Clock;
  logger: Logger;
  rotationCheckMs?: number;
}

export interface RunningWebhook {
  server: WebhookServer;
  stop(): Promise<void>;
}

export async function runWebhook(options: WebhookRunOptions): Promise<RunningWebhook> {
  const { logger } = options;
  const client = await createKubeClient(options.kubeConfig);
  const { VersionApi } = await loadKubernetesClient('vault webhook');
  const version = await options.kubeConfig.makeApiClient(VersionApi).getCode();
  const serverVersion = {
    major: Number.parseInt(version.major, 10),
    minor: Number.parseInt(version.minor, 10),
  };
  const config: MutateConfig = {
    ...options.mutate,
    serverVersion,
    namespacesRefused: [...new Set([...systemNamespaces, options.namespace])],
  };

  const registry = new Registry();
  let certificate: KeyPairPem;
  let refresh: () => Promise<void>;
  let server: WebhookServer | undefined;
  const use = (serving: KeyPairPem) => {
    certificate = serving;
    server?.setCertificate(serving);
  };

  const install = async (caBundlePem: string | undefined, url: string | undefined) => {
    if (!options.install) return;
    const body = webhookConfiguration({
      name: options.configurationName,
      namespace: options.namespace,
      ...(options.install.service
        ? { service: options.install.service }
        : { url: options.install.url ?? url }),
      caBundlePem,
    });
    try {
      const existing = await client.get<{ metadata: { resourceVersion: string } }>(
        mutatingWebhookConfigurations,
        undefined,
        options.configurationName,
      );
      await client.replace(mutatingWebhookConfigurations, undefined, options.configurationName, {
        ...body,
        metadata: { ...body.metadata, resourceVersion: existing.metadata.resourceVersion },
      });
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      await client.create(mutatingWebhookConfigurations, undefined, body);
    }
  };

  const serve = () =>
    startWebhookServer({
      config,
      logger,
      registry,
      certificate: certificate!,
      host: options.host,
      port: options.port,
      ...(options.checkLeases
        ? {
            missingLeases: createLeaseChecker(client),
            leaseReaders: {
              canGet: createLeaseAccessChecker(client),
              role: options.leaseReaderRole ?? 'vault-vaultlease-reader',
            },
          }
        : {}),
    });
  if (options.tlsFiles) {
    const files = options.tlsFiles;
    const load = async () =>
      use({ certPem: await readFile(files.cert, 'utf8'), keyPem: await readFile(files.key, 'utf8') });
    await load();
    refresh = load;
  } else {
    const policy = defaultRotationPolicy({ dnsNames: options.dnsNames, ipAddresses: options.ipAddresses });
    let publishedBundle = '';
    const rotator = createCertRotator({
      store: createSecretCertStore(client, options.namespace, options.certSecret),
      policy,
      clock: options.clock,
      publishCaBundle: async (pem) => {
        publishedBundle = pem;
        // Before the configuration exists (first start with --install) there is nothing to patch.
        if (!server && options.install) return;
        try {
          await createCaBundlePublisher(client, options.configurationName)(pem);
        } catch (err) {
          if (!isStatus(err, 404)) throw err;
          logger.warn(
            { configuration: options.configurationName },
            'the webhook configuration does not exist yet; caBundle not published',
          );
        }
      },
      useServingCertificate: use,
    });
    const first = await rotator.ensure();
    logger.info({ actions: first.actions }, 'webhook certificate ready');
    refresh = async () => {
      const result = await rotator.ensure();
      if (result.actions.length > 0) logger.info({ actions: result.actions }, 'webhook certificate rotated');
    };
    // The first bundle goes into the configuration when it is installed.
    const started = await serve();
    server = started;
    await install(publishedBundle, started.url);
    return finish(started);
  }

  server = await serve();
  await install(undefined, server.url);
  return finish(server);

  function finish(running: WebhookServer): RunningWebhook {
    const timer = setInterval(() => {
      refresh().catch((err) => logger.error({ err }, 'refreshing the webhook certificate failed'));
    }, options.rotationCheckMs ?? 3_600_000);
    timer.unref();
    logger.info(
      { url: running.url, serverVersion, configuration: options.configurationName },
      'webhook listening',
    );
    return {
      server: running,
      async stop() {
        clearInterval(timer);
        await running.close();
        client.close();
      },
    };
  }
}
