/**
 * The one contract between users' pods and the injector: every label and annotation key the
 * webhook reads or writes, with its documentation. The README's table is checked against
 * `annotationTable` (test/webhook/readme-table.test.ts), so a key added here without docs
 * fails the build.
 */

export const domain = 'vault.ghoststack.io';
const prefix = `${domain}/`;

/**
 * Label that opts a pod in. The MutatingWebhookConfiguration's `objectSelector` matches it,
 * so pods without it never reach the webhook and a webhook outage cannot block them.
 */
export const injectLabel = `${prefix}inject`;
export const injectLabelValue = 'true';

/** Per-file annotation prefixes: the key is the prefix followed by the file name. */
export const fileAnnotationPrefixes = {
  /** `credential-<file>: <credential name>`: lease this credential and write it to `<file>`. */
  credential: `${prefix}credential-`,
  /** `lease-<file>: <VaultLease name>`: write the value of this VaultLease (same namespace) to `<file>`. */
  lease: `${prefix}lease-`,
  /** `format-<file>: raw|env|json`: how the value is written (default `raw`). */
  format: `${prefix}format-`,
  /** `mode-<file>: 0400`: octal file mode (default `0400`, or `0440` with an fsGroup; at most `0777`). */
  mode: `${prefix}mode-`,
  /** `ttl-<file>: 15m`: lease TTL asked for (credential files only; default: the credential's). */
  ttl: `${prefix}ttl-`,
  /** `max-ttl-<file>: 24h`: renewals stop here, then the agent re-leases if policy allows. */
  maxTtl: `${prefix}max-ttl-`,
  /** `env-name-<file>: DATABASE_URL`: the variable name for `env` format (default: from the file name). */
  envName: `${prefix}env-name-`,
} as const;

export type FileAnnotationKind = keyof typeof fileAnnotationPrefixes;

/** Pod-wide annotations. */
export const podAnnotations = {
  /** Where the secrets volume is mounted in the app containers (and the agent). */
  mountPath: `${prefix}mount-path`,
  /** Comma-separated container names that get the mount; default: every app and init container. */
  containers: `${prefix}containers`,
  /** The agent's uid; default: the `runAsUser` every mounting container shares, else the pod's, else 65532. */
  agentRunAsUser: `${prefix}agent-run-as-user`,
  /** The agent's gid; default: the pod's `runAsGroup`, else the one every mounting container shares, else the uid. */
  agentRunAsGroup: `${prefix}agent-run-as-group`,
  agentCpuRequest: `${prefix}agent-cpu-request`,
  agentCpuLimit: `${prefix}agent-cpu-limit`,
  agentMemoryRequest: `${prefix}agent-memory-request`,
  agentMemoryLimit: `${prefix}agent-memory-limit`,
  /** The agent's log level: `debug`, `info` (default), `warn` or `error`. */
  agentLogLevel: `${prefix}agent-log-level`,
  /** Written by the webhook: `injected`. Users do not set it. */
  status: `${prefix}status`,
} as const;

export const statusInjected = 'injected';

/**
 * Labels the agent puts on every lease it takes (lease labels in Vault, not on Kubernetes
 * objects), from the downward API: the web console's Kubernetes view shows which pod holds
 * which lease by them, and `GET /v1/leases?labels=` selects by them.
 */
export const leaseLabels = {
  /** The pod the agent runs in. */
  pod: `${prefix}pod`,
  /** The pod's namespace. */
  namespace: `${prefix}namespace`,
} as const;

/**
 * On a Secret: its consent to be imported by VaultCredentials (`spec.source.secretRef`). The
 * controller watches only Secrets with this label (so it never lists or caches the others),
 * and imports one only into a VaultCredential that the annotation names: whoever may create
 * a VaultCredential cannot use the controller to read a Secret they may not read.
 */
export const secretImportLabel = `${prefix}import`;
export const secretImportLabelValue = 'true';
/** On a Secret: comma-separated names of the VaultCredentials (same namespace) that may import it. */
export const secretImportForAnnotation = `${prefix}import-for`;

/** The VaultCredential names a Secret's annotation allows (empty when it names none). */
export function importersOf(annotations: Record<string, string> | undefined): string[] {
  return (annotations?.[secretImportForAnnotation] ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name.length > 0);
}

export const fileFormats = ['raw', 'env', 'json'] as const;
export type FileFormat = (typeof fileFormats)[number];

export const logLevels = ['debug', 'info', 'warn', 'error'] as const;

export const defaults = {
  mountPath: '/vault/secrets',
  format: 'raw' as FileFormat,
  mode: 0o400,
  runAsUser: 65532,
  logLevel: 'info',
} as const;

/** One row of the README table. */
export interface AnnotationDoc {
  /** The key as written in a manifest; `<file>` stands for the file name. */
  key: string;
  kind: 'label' | 'annotation';
  example: string;
  default: string;
  description: string;
}

export const annotationTable: readonly AnnotationDoc[] = [
  {
    key: injectLabel,
    kind: 'label',
    example: '"true"',
    default: '(none: the pod is not injected)',
    description: 'Opts the pod in. Only labelled pods reach the webhook; they are refused while it is down.',
  },
  {
    key: `${fileAnnotationPrefixes.credential}<file>`,
    kind: 'annotation',
    example: 'stripe-api-key',
    default: '',
    description: 'Lease this credential for the pod and keep it in `<mount-path>/<file>`.',
  },
  {
    key: `${fileAnnotationPrefixes.lease}<file>`,
    kind: 'annotation',
    example: 'payments-db',
    default: '',
    description:
      'Write the value of this VaultLease (same namespace) to `<file>`; the operator owns the lease. One of `credential-<file>` or `lease-<file>` per file.',
  },
  {
    key: `${fileAnnotationPrefixes.format}<file>`,
    kind: 'annotation',
    example: 'env',
    default: defaults.format,
    description:
      '`raw` (the value as is), `env` (`NAME=\'value\'`, shell-quoted) or `json` (`{"NAME": "value"}`).',
  },
  {
    key: `${fileAnnotationPrefixes.mode}<file>`,
    kind: 'annotation',
    example: '0440',
    default: '0400; 0440 when the pod has an `fsGroup` and a container runs as another uid',
    description:
      'Octal file mode, at most `0777`. The file is owned by the agent uid and, when the pod sets `fsGroup`, by that group.',
  },
  {
    key: `${fileAnnotationPrefixes.ttl}<file>`,
    kind: 'annotation',
    example: '15m',
    default: "the credential's default TTL",
    description: 'TTL to ask for (credential files only); renewed at about two thirds of it.',
  },
  {
    key: `${fileAnnotationPrefixes.maxTtl}<file>`,
    kind: 'annotation',
    example: '24h',
    default: "the policy's maximum",
    description:
      'Renewals stop at this age (credential files only); then the agent leases again if policy allows, else wipes.',
  },
  {
    key: `${fileAnnotationPrefixes.envName}<file>`,
    kind: 'annotation',
    example: 'DATABASE_URL',
    default: 'the file name upper-cased, non-alphanumerics as `_`',
    description: 'The variable name in `env` and `json` formats.',
  },
  {
    key: podAnnotations.mountPath,
    kind: 'annotation',
    example: '/run/secrets/app',
    default: defaults.mountPath,
    description: 'Absolute path where the in-memory secrets volume is mounted (read-only in app containers).',
  },
  {
    key: podAnnotations.containers,
    kind: 'annotation',
    example: 'app,migrate',
    default: 'every container and init container',
    description: 'Comma-separated names of the containers that get the mount.',
  },
  {
    key: podAnnotations.agentRunAsUser,
    kind: 'annotation',
    example: '1000',
    default: "the `runAsUser` every mounting container has, else the pod's, else 65532",
    description:
      'The agent uid, which owns the files. When the webhook cannot tell that the app can read them (no shared `runAsUser`, no `fsGroup`), it admits the pod with a warning.',
  },
  {
    key: podAnnotations.agentRunAsGroup,
    kind: 'annotation',
    example: '1000',
    default: "the pod's `runAsGroup`, else the one every mounting container has, else the uid",
    description: 'The agent gid (use with a `0440` mode to share files with a group).',
  },
  {
    key: podAnnotations.agentCpuRequest,
    kind: 'annotation',
    example: '50m',
    default: 'webhook setting (10m)',
    description: "The agent's CPU request.",
  },
  {
    key: podAnnotations.agentCpuLimit,
    kind: 'annotation',
    example: '200m',
    default: 'webhook setting (200m)',
    description: "The agent's CPU limit.",
  },
  {
    key: podAnnotations.agentMemoryRequest,
    kind: 'annotation',
    example: '64Mi',
    default: 'webhook setting (48Mi)',
    description: "The agent's memory request.",
  },
  {
    key: podAnnotations.agentMemoryLimit,
    kind: 'annotation',
    example: '128Mi',
    default: 'webhook setting (128Mi)',
    description: "The agent's memory limit.",
  },
  {
    key: podAnnotations.agentLogLevel,
    kind: 'annotation',
    example: 'debug',
    default: defaults.logLevel,
    description: "The agent's log level: `debug`, `info`, `warn` or `error`.",
  },
  {
    key: secretImportLabel,
    kind: 'label',
    example: `"${secretImportLabelValue}"`,
    default: '(none: the Secret cannot be imported)',
    description:
      'On a **Secret**: it may be imported by a VaultCredential `spec.source.secretRef`. The controller watches only Secrets with this label, and only in the namespaces it is given (`controller.secretImport.namespaces`).',
  },
  {
    key: secretImportForAnnotation,
    kind: 'annotation',
    example: 'stripe-api-key,reports',
    default: '(none: no VaultCredential may import it)',
    description:
      'On a **Secret**: the VaultCredentials of its namespace that may import it (comma-separated names). Set by whoever may read the Secret.',
  },
  {
    key: podAnnotations.status,
    kind: 'annotation',
    example: statusInjected,
    default: '(set by the webhook)',
    description: 'Marks an injected pod, so that a reinvocation changes nothing. Do not set it yourself.',
  },
];

/** Is this key in our domain (and so must be one we know)? */
export const isOurKey = (key: string): boolean => key.startsWith(prefix);

/**
 * A file name is a single path segment that is also valid in an annotation key's name part
 * (at most 63 characters including the `credential-` prefix).
 */
export const fileNamePattern = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/** Default variable name for a file in `env`/`json` format: `db.env` → `DB_ENV`. */
export function defaultEnvName(file: string): string {
  const name = file.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

/** The README table, generated from `annotationTable` (docs/kubernetes/injection.md embeds it). */
export function annotationTableMarkdown(): string {
  const cell = (text: string) => text.replaceAll('|', '\\|');
  const rows = annotationTable.map(
    (row) =>
      `| \`${row.key}\` | ${row.kind} | \`${cell(row.example)}\` | ${cell(row.default)} | ${cell(row.description)} |`,
  );
  return ['| key | kind | example | default | meaning |', '|---|---|---|---|---|', ...rows].join('\n');
}
