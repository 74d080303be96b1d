import { z } from 'zod';
import { duration, labels, pageLimit, resourceName, secretValue } from './common.js';

export const credentialTypes = [
  'api-key',
  'password',
  'database-url',
  'ssh-key',
  'certificate',
  'generic',
] as const;
export const credentialType = z.enum(credentialTypes);
export type CredentialType = z.infer<typeof credentialType>;

/** How a value is generated when none is given (rotate, or a generated credential). */
export const generateSpec = z.strictObject({
  length: z.number().int().min(8).max(4096).default(32),
  alphabet: z.enum(['alphanumeric', 'hex', 'base64url', 'printable']).default('alphanumeric'),
});
export type GenerateSpec = z.infer<typeof generateSpec>;

export const leaseDefaults = z.strictObject({
  defaultTtl: duration.optional(),
  maxTtl: duration.optional(),
});

/** The only placeholder a dynamic credential's statements or rules may use. */
export const usernamePlaceholder = '{{name}}';

/** Rejects templates with any `{{...}}` other than `{{name}}`, so nothing else is ever spliced in. */
const template = (what: string) =>
  z
    .string()
    .min(1)
    .max(4096)
    .refine((text) => (text.match(/\{\{[^}]*\}\}/g) ?? []).every((p) => p === usernamePlaceholder), {
      message: `${what} may use only the placeholder ${usernamePlaceholder}`,
    });

/**
 * PostgreSQL: per lease, a LOGIN role `VALID UNTIL` the lease's end; then each creation
 * statement runs alone (extended protocol: one statement each) with `{{name}}` replaced by
 * the role as a quoted identifier. The statements are the credential author's, never a
 * lease requester's; nothing from a lease request reaches SQL.
 */
export const postgresEngineConfig = z.strictObject({
  engine: z.literal('postgres'),
  creationStatements: z.array(template('a creation statement')).min(1).max(32),
  /**
   * PBKDF2 iterations of each lease's SCRAM-SHA-256 verifier (default 4096, PostgreSQL's
   * own). A lease password has 192 random bits, so fewer iterations cost an attacker who
   * reads the verifier nothing; they make issuing and every login cheaper. Some clients
   * refuse fewer than 4096 (pgjdbc bundling com.ongres.scram 2.x).
   */
  scramIterations: z.number().int().min(1).max(100_000).optional(),
});

/** Redis ACL rules that would undo what the engine sets per lease (its password, the account being on). */
export const forbiddenAclRules = ['nopass', 'resetpass', 'reset', 'off'] as const;

/** Redis: per lease, an ACL user with a generated password and these ACL rules. */
export const redisEngineConfig = z.strictObject({
  engine: z.literal('redis'),
  aclRules: z
    .array(
      z
        .string()
        .min(1)
        .max(512)
        .regex(
          /^[^\s>#<!][^\s>#<]*$/,
          'an ACL rule is one token without spaces and without password rules (>, <, #, !)',
        )
        .refine((rule) => !(forbiddenAclRules as readonly string[]).includes(rule.toLowerCase()), {
          message: `an ACL rule may not be ${forbiddenAclRules.join(', ')}: the engine sets each lease's password and turns it on`,
        }),
    )
    .min(1)
    .max(64),
});

/**
 * A dynamic credential: its value (each version) is the engine's admin connection, which is
 * never returned; each lease gets its own upstream credential that dies with the lease.
 */
export const dynamicSpec = z.discriminatedUnion('engine', [postgresEngineConfig, redisEngineConfig]);
export type DynamicSpec = z.infer<typeof dynamicSpec>;
export const dynamicEngines = ['postgres', 'redis'] as const;
export type DynamicEngineName = (typeof dynamicEngines)[number];

/** The schemes each engine's admin connection URL may use. */
const adminSchemes: Record<DynamicEngineName, string[]> = {
  postgres: ['postgres:', 'postgresql:'],
  redis: ['redis:'],
};

/**
 * What is wrong with `value` as the engine's admin connection, or undefined. The message never
 * repeats the value: it holds the admin password.
 */
export function adminConnectionProblem(engine: DynamicEngineName, value: string): string | undefined {
  const schemes = adminSchemes[engine].map((scheme) => `${scheme}//`).join(' or ');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `the ${engine} admin connection must be a ${schemes} URL`;
  }
  if (!adminSchemes[engine].includes(url.protocol))
    // Not echoed: a value pasted without its scheme has its password there.
    return `the ${engine} admin connection must be a ${schemes} URL, and this one has another scheme`;
  if (engine === 'postgres' && !url.username)
    return 'the postgres admin connection URL must name its user (postgres://USER:PASSWORD@HOST:PORT/DATABASE)';
  if (!url.hostname && !(engine === 'postgres' && url.searchParams.has('host')))
    return `the ${engine} admin connection URL must name its host`;
  return undefined;
}

const defaultPorts: Record<DynamicEngineName, string> = { postgres: '5432', redis: '6379' };

/**
 * The server an admin connection reaches (host and port; a PostgreSQL role is the whole
 * cluster's, whatever database the URL names), to tell a new password from a new server.
 */
export function adminServer(engine: DynamicEngineName, value: string): string {
  const url = new URL(value);
  const host = (engine === 'postgres' && url.searchParams.get('host')) || url.hostname;
  return `${host.toLowerCase()}:${url.port || defaultPorts[engine]}`;
}

/**
 * The label a cluster's controller gives each credential it creates (the owning
 * VaultCredential's uid). Only a credential carrying it is the controller's own: the one whose
 * engine settings the controller may change (core/controller-role.ts).
 */
export const controllerOwnerLabel = 'vault.ghoststack.io/owner';

export const createCredentialRequest = z.strictObject({
  name: resourceName,
  type: credentialType,
  /** For a dynamic credential: the engine's admin connection URL. */
  value: secretValue.optional(),
  generate: generateSpec.optional(),
  metadata: labels.optional(),
  leases: leaseDefaults.optional(),
  dynamic: dynamicSpec.optional(),
});
export type CreateCredentialRequest = z.input<typeof createCredentialRequest>;

export const putVersionRequest = z.strictObject({
  value: secretValue,
  /**
   * Add the version only when the value differs from the current version's (compared by the
   * tenant's keyed fingerprint); for an equal value the credential comes back unchanged.
   * Needs a right that reads the value (`lease`, and `reveal` for an agent), else 403.
   */
  ifChanged: z.boolean().default(false),
});

export const rotateRequest = z.strictObject({
  value: secretValue.optional(),
  generate: generateSpec.optional(),
  /** Revoke the leases of older versions at once instead of letting them run out. */
  revokeOldLeases: z.boolean().default(false),
});

export const updateCredentialRequest = z.strictObject({
  metadata: labels.optional(),
  leases: leaseDefaults.optional(),
  /** A dynamic credential's engine settings (same engine); leases issued from now on follow them. */
  dynamic: dynamicSpec.optional(),
});

export const credentialVersion = z.object({
  version: z.number().int(),
  createdAt: z.string(),
  /**
   * HMAC of the value under the tenant's key, scoped to the credential and version: it names
   * this version, and equal values elsewhere (another version or credential) get another one,
   * so it never confirms a guess. Never the value.
   */
  fingerprint: z.string(),
});

/**
 * A dynamic credential's upstream removals that failed and are being retried (the sweep's
 * state), so operators and the controller can say so without reading the audit log.
 */
export const revocationState = z
  .object({
    failing: z
      .number()
      .int()
      .describe('Upstream accounts of ended leases not removed yet after at least one failed attempt.'),
    attempts: z
      .number()
      .int()
      .optional()
      .describe('The most attempts any of them has had (of the first 200, when more are failing).'),
    lastError: z
      .string()
      .optional()
      .describe("The latest failure, the engine's message scrubbed of secrets."),
    nextAttemptAt: z.string().optional().describe('When the next of them is retried.'),
  })
  .describe("Only on a dynamic credential's GET: its failing upstream removals, retried with backoff.");
export type RevocationState = z.infer<typeof revocationState>;

export const credential = z.object({
  name: z.string(),
  type: credentialType,
  metadata: z.record(z.string(), z.string()),
  leases: z.object({ defaultTtl: z.string().optional(), maxTtl: z.string().optional() }).optional(),
  dynamic: dynamicSpec.optional(),
  revocations: revocationState.optional(),
  currentVersion: z.number().int(),
  versions: z
    .array(credentialVersion)
    .describe(
      'The latest versions, oldest first (at most 10, so the record stays small however often it rotates); every version: GET /v1/credentials/{name}/versions',
    ),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Credential = z.infer<typeof credential>;

export const createdCredential = credential.extend({
  unchanged: z
    .literal(true)
    .optional()
    .describe(
      'The credential existed with this type, metadata and value, and the caller may read its value: nothing was written.',
    ),
});

/** How many versions a credential's record lists; every version is paged from its own key. */
export const RECORD_VERSIONS = 10;

export const listVersionsQuery = z.strictObject({
  /** At most this many versions in one answer (1–1000, default 100). */
  limit: pageLimit(100),
  /** The `continue` token of the previous page. */
  continue: z.string().min(1).max(4096).optional(),
});

/** A page of a credential's versions, oldest first; `continue` is present while more follow. */
export const versionPage = z.object({
  versions: z.array(credentialVersion),
  continue: z.string().optional().describe('Present while more may follow: pass it back as continue'),
});

export const listCredentialsQuery = z.strictObject({
  prefix: z.string().max(253).optional(),
  /** "key=value" label selectors, comma-separated. */
  labels: z.string().max(2048).optional(),
  /** At most this many credentials in one answer (1–1000, default 1000). */
  limit: pageLimit(1000),
  /** The `continue` token of the previous page, with the same filters. */
  continue: z.string().min(1).max(4096).optional(),
});
