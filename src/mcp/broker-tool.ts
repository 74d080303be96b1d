/**
 * `run_with_broker`: the MCP way to use an HTTP credential without holding it. The command
 * runs behind the credential broker (src/broker): it gets placeholders and HTTPS_PROXY; the
 * broker, with its own token (never the agent's, never in the command's environment), puts
 * the value on the wire only to the hosts the credential names. Registered only when the
 * server is configured with a broker token.
 */
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { runBrokered } from '../broker/run.js';
import { resourceName } from '../contract/common.js';
import type { Clock } from '../lib/clock.js';
import type { Vault } from '../sdk/index.js';
import { toolError, toolResult } from './tool-errors.js';
import { defaultToolLimits, type ToolLimits } from './tools.js';

export interface BrokerToolDeps {
  /** The agent's connection: whose identity the leases are for. */
  vault: () => Promise<Vault>;
  /** The broker's own connection (its token may lease for the agent and read the value). */
  brokerVault: () => Promise<Vault>;
  /** Hosts no credential names: tunnelled untouched, or refused (the default). */
  allowOtherHosts: boolean;
  /** Extra CAs (PEM) to trust for upstreams. */
  upstreamCa?: string;
  env: Record<string, string | undefined>;
  /** The agent's token and the broker's, scrubbed from the command's output. */
  token: string;
  otherTokens?: Array<{ name: string; value: string }>;
  cwd?: string;
  limits?: ToolLimits;
  clock: Clock;
}

export function registerBrokerTool(server: McpServer, deps: BrokerToolDeps): void {
  const limits = deps.limits ?? defaultToolLimits;
  server.registerTool(
    'run_with_broker',
    {
      title: 'Run a command that calls HTTPS APIs with credentials it never holds',
      description:
        'Run a shell command that calls HTTPS APIs with credentials, without the value ever entering the ' +
        'command: each credential becomes an environment variable holding a placeholder (e.g. ' +
        'STRIPE_API_KEY=vault-ph-...), and HTTPS_PROXY points at a local broker that swaps the placeholder ' +
        'for the value only on requests to the hosts the credential names (its metadata "hosts"). Use the ' +
        'variable exactly as you would the key, e.g. curl -H "Authorization: Bearer $STRIPE_API_KEY" ' +
        'https://api.stripe.com/v1/charges. Works with curl, Python requests/urllib and other clients that ' +
        'honour HTTPS_PROXY and SSL_CERT_FILE/REQUESTS_CA_BUNDLE/NODE_EXTRA_CA_CERTS (Node fetch does not ' +
        'use HTTPS_PROXY). A placeholder sent to any other host is refused (HTTP 403 from the broker). ' +
        'Leases are taken for this run and revoked afterwards. For database URLs, SSH keys and other ' +
        'non-HTTP credentials, use run_with_credentials.',
      inputSchema: {
        command: z.string().min(1).max(16_384).describe('A shell command line, run with /bin/sh -c.'),
        credentials: z
          .array(
            z.strictObject({
              credential: resourceName.describe('A credential name whose metadata names its hosts.'),
              env: z
                .string()
                .optional()
                .describe('The variable name (default: derived from the credential name).'),
            }),
          )
          .min(1)
          .max(16)
          .describe('The credentials to broker.'),
        timeoutSeconds: z
          .number()
          .int()
          .min(1)
          .max(Math.floor(limits.maxTimeoutMs / 1000))
          .optional()
          .describe('Kill the command after this many seconds (default 60).'),
        cwd: z.string().optional().describe('Working directory (default: the project directory).'),
      },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
    },
    async ({ command, credentials, timeoutSeconds, cwd }) => {
      try {
        const agent = (await deps.vault()).self.identity;
        const timeoutMs = (timeoutSeconds ?? 60) * 1000;
        const workDir = cwd ?? deps.cwd;
        const result = await runBrokered({
          vault: await deps.brokerVault(),
          agent,
          uses: credentials,
          ttl: `${Math.ceil(timeoutMs / 1000) + 60}s`,
          allowOtherHosts: deps.allowOtherHosts,
          ...(deps.upstreamCa && { upstream: { ca: deps.upstreamCa } }),
          clock: deps.clock,
          file: '/bin/sh',
          args: ['-c', command],
          baseEnv: deps.env,
          scrub: [{ name: 'VAULT_TOKEN', value: deps.token }, ...(deps.otherTokens ?? [])],
          ...(workDir !== undefined && { cwd: workDir }),
          timeoutMs,
          maxOutputChars: limits.maxOutputChars,
          detached: true,
        });
        return toolResult({
          exitCode: result.exitCode,
          ...(result.signal && { signal: result.signal }),
          ...(result.timedOut && { timedOut: true }),
          stdout: result.stdout,
          stderr: result.stderr,
          ...(result.stdoutDropped > 0 && { stdoutTruncatedChars: result.stdoutDropped }),
          ...(result.stderrDropped > 0 && { stderrTruncatedChars: result.stderrDropped }),
          brokered: result.brokered.map(({ credential, env, hosts, leaseId }) => ({
            credential,
            env,
            hosts,
            leaseId,
            revokedAfterRun: true,
          })),
          durationMs: result.durationMs,
        });
      } catch (err) {
        return toolError(err);
      }
    },
  );
}

/**
 * The broker settings of an MCP server, from its environment: `VAULT_BROKER_TOKEN_FILE` (the
 * broker's token; without it there is no run_with_broker) and `VAULT_BROKER_OTHER_HOSTS`
 * (`refuse`, the default, or `tunnel`), and `VAULT_BROKER_UPSTREAM_CA_FILE` (extra CAs to trust
 * for upstreams, e.g. a corporate CA; the system roots are always trusted).
 */
export function brokerSettingsFrom(
  env: Record<string, string | undefined>,
  readFile: (path: string) => string,
): { token: string; allowOtherHosts: boolean; upstreamCa?: string } | undefined {
  const file = env.VAULT_BROKER_TOKEN_FILE;
  if (!file) return undefined;
  const token = readFile(file).trim();
  if (!token) throw new Error(`the broker token file ${file} (VAULT_BROKER_TOKEN_FILE) is empty`);
  const other = env.VAULT_BROKER_OTHER_HOSTS ?? 'refuse';
  if (other !== 'refuse' && other !== 'tunnel')
    throw new Error(`VAULT_BROKER_OTHER_HOSTS must be "refuse" or "tunnel", not "${other}"`);
  const caFile = env.VAULT_BROKER_UPSTREAM_CA_FILE;
  return { token, allowOtherHosts: other === 'tunnel', ...(caFile && { upstreamCa: readFile(caFile) }) };
}
