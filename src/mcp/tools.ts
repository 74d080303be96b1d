/**
 * The tools an agent gets. Descriptions are written for a model: what each tool is for, what
 * it returns, and that values stay hidden unless the user's policy grants `reveal`.
 */
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { duration, resourceName } from '../contract/common.js';
import type { Credential, Lease, Vault } from '../sdk/index.js';
import { runWithCredentials } from './run-with-credentials.js';
import { toolError, toolResult } from './tool-errors.js';

export interface ToolLimits {
  /** Longest a command may run (default 60 s, at most this). */
  maxTimeoutMs: number;
  /** Output kept per stream (stdout, stderr), after scrubbing. */
  maxOutputChars: number;
}

export const defaultToolLimits: ToolLimits = { maxTimeoutMs: 600_000, maxOutputChars: 32_000 };

export interface ToolDeps {
  /** The agent's connection (lazily established, retried after a failure). */
  vault: () => Promise<Vault>;
  /** The agent's token, scrubbed from command output. */
  token: string;
  /**
   * Other tokens this server holds (the broker's), scrubbed from command output too: commands
   * run as this server's user, outside any sandbox the agent's own shell is in, and can read
   * the files those tokens come from.
   */
  otherTokens?: Array<{ name: string; value: string }>;
  /** The environment commands inherit (minus Vault's own variables). */
  env: Record<string, string | undefined>;
  cwd?: string;
  limits?: ToolLimits;
  /**
   * Offer run_with_credentials, which runs commands on this host (default true). Off for
   * Streamable HTTP unless the operator says so: a remote agent would get a shell here.
   */
  runCommands?: boolean;
}

const credentialMetadata = (credential: Credential) => ({
  name: credential.name,
  type: credential.type,
  metadata: credential.metadata,
  currentVersion: credential.currentVersion,
  updatedAt: credential.updatedAt.toISOString(),
  ...(credential.leases && { leaseDefaults: credential.leases }),
});

const leaseSummary = (lease: Lease) => ({
  leaseId: lease.id,
  credential: lease.credentialName,
  version: lease.version,
  state: lease.state,
  issuedAt: lease.issuedAt.toISOString(),
  expiresAt: lease.expiresAt.toISOString(),
  maxExpiresAt: lease.maxExpiresAt.toISOString(),
  renewable: lease.renewable,
  secondsLeft: Math.max(0, Math.round((lease.expiresAt.getTime() - Date.now()) / 1000)),
});

const guarded =
  <A>(handler: (args: A) => Promise<unknown>) =>
  async (args: A): Promise<CallToolResult> => {
    try {
      return toolResult(await handler(args));
    } catch (err) {
      return toolError(err);
    }
  };

const leaseId = z
  .string()
  .min(1)
  .max(256)
  .describe('A lease id, as returned by request_lease or list_my_leases.');

export function registerVaultTools(server: McpServer, deps: ToolDeps): void {
  const limits = deps.limits ?? defaultToolLimits;

  server.registerTool(
    'list_credentials',
    {
      title: 'List credentials',
      description:
        'List the credentials (API keys, passwords, database URLs, ...) stored in Vault that you may see. ' +
        'Returns metadata only: name, type, labels and current version. Values are never shown; ' +
        'to use one, call run_with_credentials.',
      inputSchema: {
        prefix: z.string().max(253).optional().describe('Only credentials whose name starts with this.'),
        labels: z
          .record(z.string(), z.string())
          .optional()
          .describe('Only credentials carrying all these labels, e.g. {"environment": "staging"}.'),
      },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    guarded(async ({ prefix, labels }) => {
      const vault = await deps.vault();
      const list = await vault.credentials.list({
        ...(prefix !== undefined && { prefix }),
        ...(labels !== undefined && { labels }),
      });
      return { credentials: list.map(credentialMetadata) };
    }),
  );

  server.registerTool(
    'request_lease',
    {
      title: 'Request a lease',
      description:
        'Lease a credential for a limited time, for yourself. Returns the lease id, expiry and whether it can be ' +
        'renewed, NOT the value. Pass the lease id to run_with_credentials to use the value in commands, ' +
        'renew it with renew_lease while you need it, and revoke it with revoke_lease when you are done.',
      inputSchema: {
        credential: resourceName.describe('The credential name, from list_credentials.'),
        ttl: duration
          .optional()
          .describe('How long, e.g. "15m" or "1h" (default: the credential default, else 15m).'),
      },
      annotations: {
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: false,
        openWorldHint: false,
      },
    },
    guarded(async ({ credential, ttl }) => {
      const vault = await deps.vault();
      const lease = await vault.leases.create({
        credentialName: credential,
        ...(ttl !== undefined && { ttl }),
      });
      return leaseSummary(lease);
    }),
  );

  server.registerTool(
    'renew_lease',
    {
      title: 'Renew a lease',
      description:
        'Extend one of your leases. The grant is capped by the lease maximum: check expiresAt and ' +
        'grantedTtlSeconds in the result for what you actually got.',
      inputSchema: {
        leaseId,
        increment: duration.optional().describe('How long from now, e.g. "15m" (default: the original TTL).'),
      },
      annotations: {
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: false,
        openWorldHint: false,
      },
    },
    guarded(async ({ leaseId: id, increment }) => {
      const vault = await deps.vault();
      const lease = await vault.leases.renew(id, increment !== undefined ? { increment } : {});
      return { ...leaseSummary(lease), grantedTtlSeconds: lease.grantedTtlSeconds };
    }),
  );

  server.registerTool(
    'revoke_lease',
    {
      title: 'Revoke a lease',
      description: 'End one of your leases now. Do this as soon as you no longer need a credential.',
      inputSchema: { leaseId },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    guarded(async ({ leaseId: id }) => {
      const vault = await deps.vault();
      return leaseSummary(await vault.leases.revoke(id));
    }),
  );

  server.registerTool(
    'list_my_leases',
    {
      title: 'List my leases',
      description: 'List the leases issued to you, with their expiry. Values are never shown.',
      inputSchema: {
        state: z
          .enum(['active', 'expired', 'revoked'])
          .optional()
          .describe('Only leases in this state (default: active).'),
      },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    guarded(async ({ state }) => {
      const vault = await deps.vault();
      const leases = await vault.leases.list({
        state: state ?? 'active',
        identityType: vault.self.identity.type,
        identityName: vault.self.identity.name,
      });
      return { identity: vault.self.identity, leases: leases.map(leaseSummary) };
    }),
  );

  if (deps.runCommands !== false) registerRunTool(server, deps, limits);

  server.registerTool(
    'reveal_credential',
    {
      title: 'Reveal a credential value',
      description:
        'Show a credential value to you. Only works where the user policy grants the "reveal" action (off by ' +
        'default for agents); every reveal is audited. Prefer run_with_credentials, which uses the value ' +
        'without showing it. Give leaseId (a lease you hold) or credential (leased briefly for this).',
      inputSchema: {
        leaseId: leaseId.optional(),
        credential: resourceName
          .optional()
          .describe('A credential name; a 1-minute lease is taken to reveal it.'),
      },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    guarded(async ({ leaseId: id, credential }) => {
      if ((id === undefined) === (credential === undefined)) {
        throw new RangeError('give exactly one of leaseId or credential');
      }
      const vault = await deps.vault();
      let target = id;
      let temporary = false;
      if (target === undefined) {
        const lease = await vault.leases.create({ credentialName: credential!, ttl: '1m', renewable: false });
        target = lease.id;
        temporary = true;
      }
      try {
        const lease = await vault.leases.reveal(target);
        return {
          credential: lease.credentialName,
          version: lease.version,
          leaseId: lease.id,
          value: lease.value,
          expiresAt: lease.expiresAt.toISOString(),
        };
      } finally {
        if (temporary) await vault.leases.revoke(target).catch(() => undefined);
      }
    }),
  );
}

/** run_with_credentials: commands on this host, with values injected and scrubbed. */
function registerRunTool(server: McpServer, deps: ToolDeps, limits: ToolLimits): void {
  server.registerTool(
    'run_with_credentials',
    {
      title: 'Run a command with credentials',
      description:
        'Run a shell command with credentials injected as environment variables, without you seeing the values. ' +
        'Each credential becomes a variable (default name: the credential name in upper case with "_", e.g. ' +
        'stripe-api-key -> STRIPE_API_KEY); refer to it in the command as "$STRIPE_API_KEY". Credentials given by ' +
        'name are leased for this run only and revoked afterwards; give a leaseId to use a lease you hold. ' +
        'Returns the exit code and the output, in which every value (raw, base64 or URL-encoded) is replaced by ' +
        '[REDACTED:NAME]. Do not try to print or transform values to get around this. ' +
        `Output is cut at ${defaultToolLimits.maxOutputChars} characters per stream; the run is killed after timeoutSeconds.`,
      inputSchema: {
        command: z.string().min(1).max(16_384).describe('A shell command line, run with /bin/sh -c.'),
        credentials: z
          .array(
            z.union([
              z.strictObject({
                credential: resourceName.describe('A credential name, leased for this run.'),
                env: z
                  .string()
                  .optional()
                  .describe('The variable name (default: derived from the credential name).'),
              }),
              z.strictObject({
                leaseId: z.string().min(1).describe('A lease you hold, from request_lease.'),
                env: z.string().describe('The variable name.'),
              }),
            ]),
          )
          .min(1)
          .max(16)
          .describe('The credentials to inject.'),
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
    guarded(async ({ command, credentials, timeoutSeconds, cwd }) => {
      const vault = await deps.vault();
      const workDir = cwd ?? deps.cwd;
      const result = await runWithCredentials(vault, {
        uses: credentials,
        file: '/bin/sh',
        args: ['-c', command],
        baseEnv: deps.env,
        callerToken: deps.token,
        ...(deps.otherTokens && { otherTokens: deps.otherTokens }),
        purpose: 'run_with_credentials',
        ...(workDir !== undefined && { cwd: workDir }),
        timeoutMs: (timeoutSeconds ?? 60) * 1000,
        maxOutputChars: limits.maxOutputChars,
        detached: true,
      });
      return {
        exitCode: result.exitCode,
        ...(result.signal && { signal: result.signal }),
        ...(result.timedOut && { timedOut: true }),
        stdout: result.stdout,
        stderr: result.stderr,
        ...(result.stdoutDropped > 0 && { stdoutTruncatedChars: result.stdoutDropped }),
        ...(result.stderrDropped > 0 && { stderrTruncatedChars: result.stderrDropped }),
        injected: result.injected.map(({ env, credential, version, leaseId: id, temporary }) => ({
          env,
          credential,
          version,
          leaseId: id,
          revokedAfterRun: temporary,
        })),
        durationMs: result.durationMs,
      };
    }),
  );
}
