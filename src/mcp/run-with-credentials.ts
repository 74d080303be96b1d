/**
 * Use credentials without showing them: lease each one, run a command with the values as
 * environment variables, scrub every value (and the caller's own Vault token) from the output,
 * then revoke the leases taken for the run. Shared by the MCP tool and `vault run`.
 */
import { type RunScrubbedOptions, type RunScrubbedResult, runScrubbed } from '../lib/run-scrubbed.js';
import type { Secret } from '../lib/scrub.js';
import type { LeaseKeepAlive, Vault } from '../sdk/index.js';

/** One credential to inject: by name (leased for the run) or through an existing lease. */
export type CredentialUse = { credential: string; env?: string } | { leaseId: string; env?: string };

export interface RunWithCredentialsOptions
  extends Pick<
    RunScrubbedOptions,
    'cwd' | 'timeoutMs' | 'maxOutputChars' | 'inheritStdin' | 'detached' | 'onStdout' | 'onStderr' | 'signal'
  > {
  uses: CredentialUse[];
  file: string;
  args: string[];
  /** The environment the command inherits; Vault's own variables are removed from it. */
  baseEnv: Record<string, string | undefined>;
  /** The caller's token, scrubbed from the output too. */
  callerToken?: string;
  /** Other tokens the runner holds (the broker's), scrubbed from the output too. */
  otherTokens?: Array<{ name: string; value: string }>;
  /** Who runs it, for the audit record of each use (`vault run`, `run_with_credentials`). */
  purpose: string;
}

export interface Injected {
  env: string;
  credential: string;
  version: number;
  leaseId: string;
  /** Leased for this run (and revoked after it). */
  temporary: boolean;
}

export interface RunWithCredentialsResult extends RunScrubbedResult {
  injected: Injected[];
}

const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;
const vaultVariables = ['VAULT_TOKEN', 'VAULT_TOKEN_FILE'];

/** `stripe-api-key` → `STRIPE_API_KEY`. */
export function envNameFor(credential: string): string {
  const name = credential.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

export async function runWithCredentials(
  vault: Vault,
  options: RunWithCredentialsOptions,
): Promise<RunWithCredentialsResult> {
  const names = options.uses.map(
    (use) => use.env ?? ('credential' in use ? envNameFor(use.credential) : undefined),
  );
  names.forEach((name, index) => {
    if (name === undefined) throw new RangeError(`credential ${index + 1}: give "env" when using a lease id`);
    if (!envNamePattern.test(name))
      throw new RangeError(`"${name}" is not a valid environment variable name`);
  });
  if (new Set(names).size !== names.length)
    throw new RangeError('two credentials use the same variable name');

  // Ad hoc leases end when the run is killed (its timeout). Without a timeout they take the
  // credential's default TTL (else the server's, 15m) and are renewed while the command runs,
  // so a policy's maxTtl (the README's 1h) is never asked for more than it grants.
  const ttl = options.timeoutMs !== undefined ? `${Math.ceil(options.timeoutMs / 1000)}s` : undefined;
  const injected: Injected[] = [];
  const keepAlives: LeaseKeepAlive[] = [];
  const secrets: Secret[] = [];
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(options.baseEnv)) {
    if (value !== undefined && !vaultVariables.includes(key)) env[key] = value;
  }
  if (options.callerToken) secrets.push({ name: 'VAULT_TOKEN', value: options.callerToken });
  for (const token of options.otherTokens ?? []) if (token.value) secrets.push(token);

  try {
    for (const [index, use] of options.uses.entries()) {
      const envName = names[index]!;
      let leaseId: string;
      if ('credential' in use) {
        const lease = await vault.leases.create({
          credentialName: use.credential,
          renewable: ttl === undefined,
          ...(ttl !== undefined && { ttl }),
        });
        leaseId = lease.id;
        // Recorded before its value is fetched, so that it is revoked even if that fails.
        injected.push({
          env: envName,
          credential: use.credential,
          version: lease.version,
          leaseId,
          temporary: true,
        });
        if (ttl === undefined) keepAlives.push(vault.leases.keepAlive(lease));
      } else {
        leaseId = use.leaseId;
      }
      // A lease is a right to use: the value comes through `use` (audited with its purpose),
      // which needs no `reveal` grant, and goes only into the command's environment.
      const lease = await vault.leases.use(leaseId, { purpose: options.purpose });
      if (!('credential' in use)) {
        injected.push({
          env: envName,
          credential: lease.credentialName,
          version: lease.version,
          leaseId,
          temporary: false,
        });
      }
      if (lease.value === undefined) throw new Error(`the server returned no value for lease ${lease.id}`);
      env[envName] = lease.value;
      secrets.push({ name: envName, value: lease.value });
    }
    const result = await runScrubbed({
      file: options.file,
      args: options.args,
      env,
      secrets,
      ...(options.cwd !== undefined && { cwd: options.cwd }),
      ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
      ...(options.maxOutputChars !== undefined && { maxOutputChars: options.maxOutputChars }),
      ...(options.inheritStdin !== undefined && { inheritStdin: options.inheritStdin }),
      ...(options.detached !== undefined && { detached: options.detached }),
      ...(options.onStdout && { onStdout: options.onStdout }),
      ...(options.onStderr && { onStderr: options.onStderr }),
      ...(options.signal && { signal: options.signal }),
    });
    return { ...result, injected };
  } finally {
    for (const keepAlive of keepAlives) keepAlive.stop();
    await Promise.all(
      injected
        .filter((use) => use.temporary)
        .map((use) => vault.leases.revoke(use.leaseId).catch(() => undefined)),
    );
  }
}
