import { z } from 'zod';
import { duration, resourceName } from '../contract/common.js';
import { defaults, fileFormats, fileNamePattern } from '../webhook/annotations.js';

/**
 * What the agent keeps on its volume. The webhook builds this from the pod's annotations and
 * passes it as JSON in `VAULT_AGENT_CONFIG`; `vault agent --config` accepts the same JSON
 * (inline or a file path). No secret is ever part of it.
 */

/** Octal mode as written in annotations ("0400", "640") or a number. */
export const fileMode = z.union([
  z.number().int().min(0).max(0o777),
  z
    .string()
    .regex(/^0?[0-7]{3}$/, 'a mode is three octal digits, optionally with a leading 0, like "0400"')
    .transform((text) => Number.parseInt(text, 8)),
]);

/** A Kubernetes object name (DNS subdomain). */
export const objectName = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/,
    'a Kubernetes name is 1-253 lowercase letters, digits, "." or "-", starting and ending with a letter or digit',
  );

export const envName = z
  .string()
  .regex(
    /^[A-Za-z_][A-Za-z0-9_]{0,127}$/,
    'a variable name is letters, digits and "_", not starting with a digit',
  );

export const agentFile = z
  .strictObject({
    /** The file name inside the mount path. */
    name: z
      .string()
      .max(52)
      .regex(
        fileNamePattern,
        'a file name is letters, digits, ".", "_" or "-", starting and ending with a letter or digit',
      ),
    /** Lease this credential (the agent owns the lease). */
    credential: resourceName.optional(),
    /** Or: the VaultLease object (in the pod's namespace) whose lease the operator owns. */
    lease: objectName.optional(),
    format: z.enum(fileFormats).default(defaults.format),
    mode: fileMode.default(defaults.mode),
    ttl: duration.optional(),
    maxTtl: duration.optional(),
    envName: envName.optional(),
  })
  .superRefine((file, ctx) => {
    if ((file.credential === undefined) === (file.lease === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: `file "${file.name}" needs exactly one of credential or lease`,
      });
    }
    if (file.lease !== undefined && (file.ttl !== undefined || file.maxTtl !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: `file "${file.name}" is backed by a VaultLease, whose spec sets the TTL; ttl and maxTtl do not apply`,
      });
    }
  });
export type AgentFile = z.output<typeof agentFile>;
export type AgentFileInput = z.input<typeof agentFile>;

export const agentConfig = z
  .strictObject({
    files: z.array(agentFile).min(1, 'at least one file').max(64, 'at most 64 files'),
    /** The directory files are written to (a tmpfs in a pod). */
    directory: z.string().startsWith('/', 'the directory is an absolute path').default(defaults.mountPath),
    /** The projected ServiceAccount token used to log in (when no VAULT_TOKEN is given). */
    tokenPath: z.string().optional(),
    /** Port of /healthz and /metrics; 0 picks a free one. */
    healthPort: z.number().int().min(0).max(65535).default(8099),
    /** Where VaultLease objects live (the pod's namespace). */
    namespace: objectName.optional(),
    /**
     * The group files are given (the pod's fsGroup, which the kubelet adds to every
     * container's groups), so a group-readable mode lets an app of another uid read them.
     */
    group: z.number().int().min(0).max(2_147_483_647).optional(),
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    for (const file of config.files) {
      if (seen.has(file.name))
        ctx.addIssue({ code: 'custom', message: `file "${file.name}" is listed twice` });
      seen.add(file.name);
    }
  });
export type AgentConfig = z.output<typeof agentConfig>;
export type AgentConfigInput = z.input<typeof agentConfig>;

/** The env var the webhook sets on the agent container. */
export const agentConfigEnv = 'VAULT_AGENT_CONFIG';

/**
 * The Vault API's CA bundle as PEM text. The webhook sets it on the agent container (a CA
 * certificate is public, and an env var needs no volume in the pod's namespace);
 * `VAULT_CACERT` (a file) is the same for agents run by hand.
 */
export const agentCaPemEnv = 'VAULT_CACERT_PEM';

/** The cluster the agent's Kubernetes login names, when Vault serves several (set by the webhook). */
export const agentClusterEnv = 'VAULT_KUBERNETES_CLUSTER';
export const agentCaFileEnv = 'VAULT_CACERT';
