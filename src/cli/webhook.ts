/**
 * `vault webhook`: the mutating admission webhook that injects the agent into opted-in pods.
 * Configuration comes from flags and the environment, parsed once with one schema.
 */
import type { Command } from 'commander';
import { z } from 'zod';
import { clusterName } from '../contract/common.js';
import { loadKubernetesClient } from '../k8s/client-module.js';
import { readCaBundle } from '../lib/ca-bundle.js';
import { systemClock } from '../lib/clock.js';
import { createLogger } from '../lib/logger.js';
import { defaultConfigurationName } from '../webhook/configuration.js';
import { runWebhook } from '../webhook/run.js';

const listen = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^:]*):\d{1,5}$/, '--listen must look like 0.0.0.0:8443');
const quantity = z.string().regex(/^\d+(\.\d+)?(m|k|M|G|Ki|Mi|Gi)?$/, 'a quantity like 100m or 64Mi');

const webhookConfigSchema = z
  .object({
    listen,
    namespace: z.string().min(1, 'the webhook namespace is needed: --namespace or $POD_NAMESPACE'),
    agentImage: z.string().min(1, 'the agent image is needed: --agent-image or $VAULT_AGENT_IMAGE'),
    agentImagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']),
    vaultAddr: z.url('the Vault address pods use is needed: --vault-addr or $VAULT_ADDR'),
    vaultCaFile: z.string().min(1).optional(),
    clusterName: clusterName.optional(),
    configurationName: z.string().min(1),
    serviceName: z.string().min(1),
    certSecret: z.string().min(1),
    extraDnsNames: z.array(z.string().min(1)),
    ipAddresses: z.array(z.ipv4().or(z.ipv6())),
    tlsCertFile: z.string().optional(),
    tlsKeyFile: z.string().optional(),
    install: z.boolean(),
    installUrl: z.url().optional(),
    checkLeases: z.boolean(),
    leaseReaderRole: z.string().min(1),
    kubeconfig: z.string().optional(),
    healthPort: z.coerce.number().int().min(1).max(65535),
    resources: z.object({
      cpuRequest: quantity,
      cpuLimit: quantity,
      memoryRequest: quantity,
      memoryLimit: quantity,
    }),
    logLevel: z.string(),
  })
  .refine((c) => (c.tlsCertFile === undefined) === (c.tlsKeyFile === undefined), {
    message: '--tls-cert-file and --tls-key-file go together',
  })
  .refine((c) => c.vaultCaFile === undefined || c.vaultAddr.startsWith('https:'), {
    message: '--vault-ca-file is for an https --vault-addr',
    path: ['vaultCaFile'],
  });

const collect = (value: string, previous: string[]) => [...previous, value];

export function register(program: Command): void {
  program
    .command('webhook')
    .description(
      'Serve the mutating webhook that injects the vault agent into pods labelled vault.ghoststack.io/inject=true',
    )
    .option('--listen <host:port>', 'HTTPS address', '0.0.0.0:8443')
    .option('--namespace <ns>', "the webhook's namespace, never injected (default $POD_NAMESPACE)")
    .option('--agent-image <image>', 'the image of the injected agent (default $VAULT_AGENT_IMAGE)')
    .option('--agent-image-pull-policy <policy>', 'Always, IfNotPresent or Never', 'IfNotPresent')
    .option('--vault-addr <url>', 'the Vault address as pods reach it (default $VAULT_ADDR)')
    .option(
      '--cluster-name <name>',
      'the name Vault knows this cluster by; agents log in naming it (env VAULT_CLUSTER_NAME)',
    )
    .option(
      '--vault-ca-file <file>',
      "PEM CA bundle of the Vault API's certificate, read at start and given to injected agents as $VAULT_CACERT_PEM (default $VAULT_CACERT)",
    )
    .option(
      '--configuration-name <name>',
      'the MutatingWebhookConfiguration whose caBundle is kept current',
      defaultConfigurationName,
    )
    .option(
      '--service-name <name>',
      'the Service in front of the webhook (for the certificate names)',
      'vault-injector',
    )
    .option(
      '--cert-secret <name>',
      'Secret holding the self-managed CA and serving certificate',
      'vault-injector-tls',
    )
    .option('--dns-name <name>', 'extra DNS name for the serving certificate (repeatable)', collect, [])
    .option('--ip-address <ip>', 'IP address for the serving certificate (repeatable)', collect, [])
    .option(
      '--tls-cert-file <path>',
      'use this certificate (e.g. from cert-manager) instead of the self-managed one',
    )
    .option('--tls-key-file <path>', 'the key of --tls-cert-file')
    .option('--install', 'create or update the MutatingWebhookConfiguration itself')
    .option('--install-url <url>', 'with --install: the URL the API server calls (default: the Service)')
    .option(
      '--no-check-leases',
      'do not refuse pods naming VaultLeases that do not exist or that their ServiceAccount cannot read',
    )
    .option(
      '--lease-reader-role <name>',
      'the ClusterRole a refusal tells users to bind for lease-<file> files (the chart ships it)',
      'vault-vaultlease-reader',
    )
    .option('--kubeconfig <path>', 'default: in-cluster, or $KUBECONFIG')
    .option('--agent-health-port <port>', "the agent's /healthz port inside pods", '8099')
    .option('--agent-cpu-request <q>', 'default agent CPU request', '10m')
    .option('--agent-cpu-limit <q>', 'default agent CPU limit', '200m')
    .option('--agent-memory-request <q>', 'default agent memory request', '48Mi')
    .option('--agent-memory-limit <q>', 'default agent memory limit', '128Mi')
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .action(async (flags: Record<string, unknown>) => {
      const env = process.env;
      const parsed = webhookConfigSchema.safeParse({
        listen: flags.listen,
        namespace: flags.namespace ?? env.POD_NAMESPACE ?? '',
        agentImage: flags.agentImage ?? env.VAULT_AGENT_IMAGE ?? '',
        agentImagePullPolicy: flags.agentImagePullPolicy,
        vaultAddr: flags.vaultAddr ?? env.VAULT_ADDR ?? '',
        vaultCaFile: flags.vaultCaFile ?? (env.VAULT_CACERT || undefined),
        clusterName: flags.clusterName ?? (env.VAULT_CLUSTER_NAME || undefined),
        configurationName: flags.configurationName,
        serviceName: flags.serviceName,
        certSecret: flags.certSecret,
        extraDnsNames: flags.dnsName,
        ipAddresses: flags.ipAddress,
        tlsCertFile: flags.tlsCertFile,
        tlsKeyFile: flags.tlsKeyFile,
        install: flags.install === true,
        installUrl: flags.installUrl,
        checkLeases: flags.checkLeases !== false,
        leaseReaderRole: flags.leaseReaderRole,
        kubeconfig: flags.kubeconfig ?? env.KUBECONFIG,
        healthPort: flags.agentHealthPort,
        resources: {
          cpuRequest: flags.agentCpuRequest,
          cpuLimit: flags.agentCpuLimit,
          memoryRequest: flags.agentMemoryRequest,
          memoryLimit: flags.agentMemoryLimit,
        },
        logLevel: flags.logLevel,
      });
      if (!parsed.success) {
        for (const issue of parsed.error.issues) {
          process.stderr.write(`vault webhook: ${issue.path.join('.') || 'flags'}: ${issue.message}\n`);
        }
        process.exitCode = 2;
        return;
      }
      const c = parsed.data;
      let vaultCaPem: string | undefined;
      if (c.vaultCaFile) {
        const ca = await readCaBundle(c.vaultCaFile);
        if ('error' in ca) {
          process.stderr.write(`vault webhook: --vault-ca-file: ${ca.error}\n`);
          process.exitCode = 2;
          return;
        }
        vaultCaPem = ca.pem;
      }
      const logger = createLogger({ name: 'vault-webhook', level: c.logLevel });
      const { KubeConfig } = await loadKubernetesClient('vault webhook');
      const kubeConfig = new KubeConfig();
      if (c.kubeconfig) kubeConfig.loadFromFile(c.kubeconfig);
      else kubeConfig.loadFromCluster();
      const separator = c.listen.lastIndexOf(':');
      const host = c.listen.slice(0, separator).replace(/^\[|\]$/g, '') || '0.0.0.0';
      const port = Number(c.listen.slice(separator + 1));
      const service = `${c.serviceName}.${c.namespace}.svc`;

      let running: Awaited<ReturnType<typeof runWebhook>>;
      try {
        running = await runWebhook({
          kubeConfig,
          namespace: c.namespace,
          host,
          port,
          mutate: {
            agentImage: c.agentImage,
            agentImagePullPolicy: c.agentImagePullPolicy,
            vaultAddr: c.vaultAddr,
            ...(vaultCaPem ? { vaultCaPem } : {}),
            ...(c.clusterName ? { vaultCluster: c.clusterName } : {}),
            resources: c.resources,
            tokenAudience: 'vault',
            tokenExpirationSeconds: 600,
            healthPort: c.healthPort,
          },
          configurationName: c.configurationName,
          certSecret: c.certSecret,
          dnsNames: [service, `${service}.cluster.local`, ...c.extraDnsNames],
          ipAddresses: c.ipAddresses,
          ...(c.tlsCertFile && c.tlsKeyFile ? { tlsFiles: { cert: c.tlsCertFile, key: c.tlsKeyFile } } : {}),
          ...(c.install
            ? {
                install: c.installUrl
                  ? { url: c.installUrl }
                  : host === '127.0.0.1' || host === '::1'
                    ? {}
                    : { service: { name: c.serviceName, namespace: c.namespace } },
              }
            : {}),
          checkLeases: c.checkLeases,
          leaseReaderRole: c.leaseReaderRole,
          clock: systemClock,
          logger,
        });
      } catch (err) {
        logger.fatal(`the webhook could not start: ${(err as Error).message}`);
        process.exitCode = 1;
        return;
      }
      // Tests and scripts read the URL from this line.
      process.stdout.write(`webhook listening on ${running.server.url}\n`);
      await new Promise<void>((resolve) => {
        const stop = () => void running.stop().then(resolve, resolve);
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    });
}
