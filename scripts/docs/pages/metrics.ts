/**
 * The metrics reference, from the prom-client registries each process serves on /metrics:
 * the API server, the controller, the webhook and the injected agent.
 */
import { Registry } from 'prom-client';
import { agentMetrics } from '../../../src/agent/lease-loop.js';
import { createOperatorMetrics } from '../../../src/operator/metrics.js';
import { createServerMetrics } from '../../../src/server/metrics.js';
import { admissionMetrics } from '../../../src/webhook/server.js';
import { code, generatedNotice, table, text } from '../markdown.js';

interface Described {
  name: string;
  help: string;
  type: string;
  labelNames: readonly string[];
}

/** The Node.js process metrics prom-client adds by default, summarised in one line. */
const isDefault = (name: string) => /^(vault_operator_)?(process_|nodejs_)/.test(name);

function describe(registry: Registry): Described[] {
  return registry.getMetricsAsArray().map((metric) => {
    const m = metric as unknown as { name: string; help: string; labelNames?: readonly string[] };
    return {
      name: m.name,
      help: m.help,
      type: (metric as unknown as { type?: string }).type ?? metric.constructor.name.toLowerCase(),
      labelNames: m.labelNames ?? [],
    };
  });
}

export interface Process {
  title: string;
  served: string;
  registry: Registry;
}

export function processes(): Process[] {
  const webhook = new Registry();
  admissionMetrics(webhook);
  const agent = new Registry();
  agentMetrics(agent);
  return [
    {
      title: 'API server (`vault server`, `vault dev`)',
      served:
        '`GET /metrics` on the API port with a token whose policy grants `metrics` (or `admin`), or a system token; without a token on `--metrics-listen` only (the chart: `server.metrics.port`).',
      registry: createServerMetrics().registry,
    },
    {
      title: 'Controller (`vault operator run`)',
      served: '`GET /metrics` on `--metrics-listen` (the chart: port `controller.metricsPort`, 8080).',
      registry: createOperatorMetrics({ defaultMetrics: true }).registry,
    },
    {
      title: 'Injector webhook (`vault webhook`)',
      served: '`GET /metrics` on the webhook HTTPS port (the chart: `webhook.port`, 8443).',
      registry: webhook,
    },
    {
      title: 'Injected agent (`vault agent`)',
      served: '`GET /metrics` on the agent health port (8099 by default, beside `/healthz`).',
      registry: agent,
    },
  ];
}

export function metricsPage(): string {
  const sections = processes().map(({ title, served, registry }) => {
    const all = describe(registry);
    const own = all.filter((m) => !isDefault(m.name));
    const defaults = all.filter((m) => isDefault(m.name));
    const prefix = defaults[0]?.name.startsWith('vault_operator_') ? 'vault_operator_' : '';
    return [
      `## ${title}`,
      '',
      served,
      '',
      table(
        ['metric', 'type', 'labels', 'meaning'],
        own.map((m) => [code(m.name), m.type, m.labelNames.map((l) => code(l)).join(', '), text(m.help)]),
      ),
      ...(defaults.length
        ? [
            '',
            `Plus prom-client's Node.js process metrics (${code(`${prefix}process_*`)}, ${code(`${prefix}nodejs_*`)}: CPU, memory, event loop lag, garbage collection, handles).`,
          ]
        : []),
    ].join('\n');
  });
  return [
    generatedNotice(
      'the prom-client registries of each process (src/server/metrics.ts, src/operator/metrics.ts, src/webhook/server.ts, src/agent/lease-loop.ts)',
    ),
    '',
    '# Metrics reference',
    '',
    'Every Prometheus metric Vault exports, per process. Labels carry route templates, kinds, phases and outcomes, never a name of a secret or a value. Which of them to alert on: [Operations](/operations/).',
    '',
    ...sections.flatMap((section) => [section, '']),
  ].join('\n');
}
