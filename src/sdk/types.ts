/**
 * The SDK's public data types. They mirror the zod schemas in src/contract (a compile-time
 * test keeps them equal, field for field) but are written out here so the published package
 * carries no dependency on zod. Timestamps arrive as ISO strings and are exposed as `Date`s.
 */

/** Who acts or is acted for. */
export type IdentityType = 'human' | 'agent' | 'workload';

/** An identity: a person, an AI agent, or a Kubernetes workload (`system:serviceaccount:NS:NAME`). */
export interface Identity {
  /** The kind of identity. */
  type: IdentityType;
  /** Its name, unique within the type and tenant. */
  name: string;
}

/** The kinds of credential Vault stores. */
export type CredentialType = 'api-key' | 'password' | 'database-url' | 'ssh-key' | 'certificate' | 'generic';

/** How a value is generated when none is given. */
export interface GenerateSpec {
  /** Number of characters, 8 to 4096 (default 32). */
  length?: number;
  /** Characters to draw from (default `alphanumeric`). */
  alphabet?: 'alphanumeric' | 'hex' | 'base64url' | 'printable';
}

/** Lease TTL defaults of a credential, as duration strings such as `"15m"`. */
export interface LeaseDefaults {
  /** TTL of a lease that asks for none. */
  defaultTtl?: string;
  /** The longest lease this credential grants. */
  maxTtl?: string;
}

/** One stored version of a credential (never its value). */
export interface CredentialVersion {
  /** The version number, from 1. */
  version: number;
  /** When the version was stored. */
  createdAt: Date;
  /**
   * Keyed HMAC of this version's value, scoped to the credential and version: it names the
   * version and reveals nothing about the value, not even whether two versions are equal
   * (Vault compares values itself: `putVersion(..., { ifChanged: true })`).
   */
  fingerprint: string;
}

/** A credential's metadata; the value is only ever handed out through a lease. */
export interface Credential {
  /** Unique name within the tenant. */
  name: string;
  /** The kind of secret. */
  type: CredentialType;
  /** Labels, used by policies and for listing. */
  metadata: Record<string, string>;
  /** Lease TTL defaults, when set. */
  leases?: LeaseDefaults;
  /** Set on a dynamic credential: the engine that issues each lease its own upstream account. */
  dynamic?: DynamicSpec;
  /** On a dynamic credential's `get`: upstream removals that failed and are being retried. */
  revocations?: RevocationState;
  /** The version new leases get. */
  currentVersion: number;
  /** The latest versions, oldest first (at most 10); every version: `credentials.versions(name)`. */
  versions: CredentialVersion[];
  /** When the credential was created. */
  createdAt: Date;
  /** When the credential last changed. */
  updatedAt: Date;
}

/** Input of {@link CredentialsApi.create}: give `value`, or `generate` to let Vault generate one. */
export interface CreateCredentialInput {
  /** 1-253 letters, digits, `.`, `_` or `-`. */
  name: string;
  /** The kind of secret. */
  type: CredentialType;
  /** The secret value (UTF-8 text up to 64 KiB). */
  value?: string;
  /** Generate the value instead of giving it. */
  generate?: GenerateSpec;
  /** Labels such as `{ environment: 'production' }`. */
  metadata?: Record<string, string>;
  /** Lease TTL defaults. */
  leases?: LeaseDefaults;
  /**
   * Makes it dynamic: `value` is then the engine's admin connection URL (never returned), and
   * each lease gets its own account that the upstream system refuses once the lease ends.
   */
  dynamic?: DynamicSpec;
}

/**
 * A dynamic credential's engine. PostgreSQL runs each creation statement alone, with
 * `{{name}}` as the lease's role (a quoted identifier); Redis gives each lease's ACL user
 * these rules.
 */
export type DynamicSpec =
  | {
      engine: 'postgres';
      creationStatements: string[];
      /**
       * PBKDF2 iterations of each lease's SCRAM verifier (default 4096). Fewer make issuing
       * and logins cheaper at no loss for 192-bit random passwords, if every client accepts
       * them (pgjdbc with com.ongres.scram 2.x needs 4096).
       */
      scramIterations?: number;
    }
  | { engine: 'redis'; aclRules: string[] };

/**
 * A dynamic credential's upstream removals (of ended leases' accounts) that failed and are
 * retried with backoff until the upstream system confirms.
 */
export interface RevocationState {
  /** Accounts not removed yet after at least one failed attempt (0: none failing). */
  failing: number;
  /** The most attempts any of them has had. */
  attempts?: number;
  /** The latest failure, as the engine reported it (never a password). */
  lastError?: string;
  /** When the next of them is retried (ISO 8601). */
  nextAttemptAt?: string;
}

/** Input of {@link CredentialsApi.update}. */
export interface UpdateCredentialInput {
  /** Replaces the labels. */
  metadata?: Record<string, string>;
  /** Replaces the lease TTL defaults. */
  leases?: LeaseDefaults;
  /** Replaces a dynamic credential's engine settings (same engine); new leases follow them. */
  dynamic?: DynamicSpec;
}

/** Input of {@link CredentialsApi.rotate}: a given value, a generated one, or the server's default generation. */
export interface RotateCredentialInput {
  /** The new value. */
  value?: string;
  /** Generate the new value. */
  generate?: GenerateSpec;
  /** Revoke the leases of older versions now instead of letting them run out. */
  revokeOldLeases?: boolean;
}

/** Filters of {@link CredentialsApi.list}. */
export interface ListCredentialsQuery {
  /** Only names starting with this. */
  prefix?: string;
  /**
   * Only credentials carrying all these labels (exact values). A value holding "," or starting
   * or ending with a space cannot be selected: `list` throws a TypeError for it.
   */
  labels?: Record<string, string>;
}

/** The state of a lease. Only `active` leases give out values. */
export type LeaseState = 'active' | 'expired' | 'revoked';

/** A time-limited grant of one credential version to one identity. */
export interface Lease {
  /** The lease id. */
  id: string;
  /** The tenant it belongs to. */
  tenant: string;
  /** The leased credential. */
  credentialName: string;
  /** The leased version. */
  version: number;
  /** Who the lease is for. */
  identity: Identity;
  /** Who asked for it. */
  issuedBy: Identity;
  /** When it was issued. */
  issuedAt: Date;
  /** When it ends unless renewed. */
  expiresAt: Date;
  /** Renewals never extend it past this. */
  maxExpiresAt: Date;
  /** Whether it may be renewed. */
  renewable: boolean;
  /** How many times it was renewed. */
  renewCount: number;
  /** Its state when this object was fetched. */
  state: LeaseState;
  /** When it was revoked, if it was. */
  revokedAt?: Date;
  /** Why it was revoked, if it was. */
  revokeReason?: string;
  /** Labels given at creation, to find the lease by. */
  labels?: Record<string, string>;
  /** A dynamic credential's lease: the upstream account issued for it alone. */
  dynamic?: { engine: string; username: string };
  /**
   * The secret value: on read, reveal and use, and on create unless the caller is an agent
   * whose policy does not grant `reveal` (then the lease is a handle to use, not to read).
   */
  value?: string;
  /** On renew: the seconds actually granted, which may be less than asked for (max TTL). */
  grantedTtlSeconds?: number;
}

/** Input of {@link LeasesApi.create}. */
export interface CreateLeaseInput {
  /** The credential to lease. */
  credentialName: string;
  /** How long, e.g. `"15m"`; defaults to the credential's default TTL, else 15 minutes. */
  ttl?: string;
  /** Who the lease is for; defaults to the caller. */
  identity?: Identity;
  /** Whether it may be renewed (default true). */
  renewable?: boolean;
  /** Renewals never extend it past issue time + maxTtl (also capped by policy). */
  maxTtl?: string;
  /** A specific version; defaults to the current one. */
  version?: number;
  /** Labels to find the lease by later. */
  labels?: Record<string, string>;
}

/**
 * Input of {@link LeasesApi.use}: one use of a lease's value, for the audit record (a runner,
 * or the broker per request). A query string in `path` is cut off before it is stored.
 */
export interface UseLeaseInput {
  /** Who uses it and how: `"vault run"`, `"run_with_credentials"`, `"broker"`. */
  purpose?: string;
  /**
   * For brokered requests: the upstream host (`api.stripe.com`, optionally `:port`; 443 when
   * none). The server refuses an allowed use unless the credential's `metadata.hosts` names it.
   */
  host?: string;
  /** The upstream port, when not given in `host`. */
  port?: number;
  /** For brokered requests: the HTTP method, upper case. */
  method?: string;
  /** For brokered requests: the request path. */
  path?: string;
  /**
   * `allowed` (default): the value is about to be used and is returned; `denied`: a refused
   * attempt, only recorded (no value).
   */
  outcome?: 'allowed' | 'denied';
  /** Why a use was denied; never a value. */
  reason?: string;
}

/** Filters of {@link LeasesApi.list}. */
export interface ListLeasesQuery {
  /** Only leases in this state. */
  state?: LeaseState;
  /** Only leases of this credential. */
  credentialName?: string;
  /** Only leases for identities of this type. */
  identityType?: IdentityType;
  /** Only leases for identities of this name. */
  identityName?: string;
  /** Only leases carrying these labels: `"key=value,key2=value2"`. */
  labels?: string;
  /** At most this many (1-1000, default 100). */
  limit?: number;
  /** The `continue` token of the previous page (`leases.page`), with the same filters. */
  continue?: string;
}

/** What {@link LeasesApi.revokeBulk} revokes: a credential's leases, an identity's, or the whole tenant's. */
export type BulkRevokeInput = { credentialName: string } | { identity: Identity } | { all: true };

/** The result of a bulk revocation. */
/** One page of `leases.page`; `continue` is present while more may follow. */
export interface LeasePage {
  leases: Lease[];
  continue?: string;
}

export interface BulkRevokeResult {
  /** How many leases were revoked. */
  revoked: number;
  /** The ids of the first 1,000 of them. */
  leaseIds: string[];
  /** True where more leases were revoked than `leaseIds` lists. */
  truncated: boolean;
}

/** One change of a lease, from {@link LeasesApi.events}. */
export interface LeaseEvent {
  /** What happened. */
  type: 'issued' | 'renewed' | 'revoked' | 'expired';
  /** The lease after the change (never with a value). */
  lease: Omit<Lease, 'value'>;
}

/** What a token is and may do. */
export interface TokenInfo {
  /** Non-secret id to look the token up or revoke it. */
  accessor: string;
  /** Its tenant. */
  tenant: string;
  /** The identity it authenticates. */
  identity: Identity;
  /** Names of its policies. */
  policies: string[];
  /** A human label. */
  displayName?: string;
  /** When it was issued. */
  issuedAt: Date;
  /** When it stops working. */
  expiresAt: Date;
  /** Who created it. */
  createdBy?: Identity;
  /** Whether it is a system token (may address any tenant). */
  system?: boolean;
  /**
   * Set on a cluster controller's token: it acts in that cluster's tenants with the controller
   * role (`cluster` absent: the unnamed cluster).
   */
  controllerOf?: { cluster?: string };
}

/** A newly created token: the secret `token` is shown only once. */
export interface CreatedToken extends TokenInfo {
  /** The bearer secret. */
  token: string;
}

/** Input of {@link TokensApi.create}. */
export interface CreateTokenInput {
  /** The identity the token authenticates. */
  identity: Identity;
  /** Policies it carries. */
  policies?: string[];
  /** How long it lives (default `"1h"`). */
  ttl?: string;
  /** A human label. */
  displayName?: string;
}

/** An action a policy rule grants. */
export type PolicyAction =
  | 'list'
  | 'read-metadata'
  | 'lease'
  | 'reveal'
  | 'create'
  | 'rotate'
  | 'delete'
  | 'admin'
  /** Read the server's Prometheus metrics (process-wide totals and this tenant's series). */
  | 'metrics';

/** One rule of a policy. */
export interface PolicyRule {
  /** Credential name globs (`"stripe-*"`); omitted means every credential. */
  credentials?: string[];
  /** Labels a credential must carry for the rule to apply. */
  labels?: Record<string, string>;
  /** What the rule grants. */
  actions: PolicyAction[];
  /** The longest lease it grants. */
  maxTtl?: string;
}

/** The editable part of a policy. */
export interface PolicyBody {
  /** What the policy is for. */
  description?: string;
  /** Its rules; anything not granted is denied. */
  rules: PolicyRule[];
  /** Identities a token with this policy may act for (name is a glob). */
  actFor?: Identity[];
}

/** A stored policy. */
export interface Policy extends PolicyBody {
  /** Its name. */
  name: string;
  /** When it was created. */
  createdAt: Date;
  /** When it last changed. */
  updatedAt: Date;
}

/** A stored identity with its policies. */
export interface IdentityRecord extends Identity {
  /** Policies every token of this identity carries. */
  policies: string[];
  /** Labels. */
  metadata?: Record<string, string>;
  /** When it was created. */
  createdAt: Date;
  /** When it last changed. */
  updatedAt: Date;
}

/** Input of {@link IdentitiesApi.put}. */
export interface IdentityInput {
  /** Policies every token of this identity carries. */
  policies?: string[];
  /** Labels. */
  metadata?: Record<string, string>;
}

/** A tenant. */
export interface Tenant {
  /** Its id: a DNS label. */
  id: string;
  /** When it was created. */
  createdAt: Date;
  /** What it is for. */
  description?: string;
}

/** The outcome of an audited decision. */
export type AuditOutcome = 'allowed' | 'denied' | 'error';

/** One audit record. */
export interface AuditRecord {
  /** Its position in the tenant's chain. */
  seq: number;
  /** 2 when linked by the tenant's keyed HMAC (absent on records from before `audit.rekey`). */
  v?: 2;
  /** When the decision was made. */
  time: Date;
  /** The request it belongs to. */
  requestId: string;
  /** The tenant. */
  tenant: string;
  /** The authenticated identity. */
  actor: Identity;
  /** The identity it acted for, when different. */
  actingFor?: Identity;
  /** Who minted the caller's token, when someone else did (the human behind an agent). */
  delegatedBy?: Identity;
  /** What was attempted, e.g. `lease.create`. */
  action: string;
  /** What it was attempted on. */
  resource: string;
  /** Allowed, denied or error. */
  outcome: AuditOutcome;
  /** Why, when denied or failed. */
  reason?: string;
  /** The source address. */
  source?: string;
  /** Keyed HMAC of an issued value (never the value). */
  valueHmac?: string;
  /** Hash of the previous record. */
  prevHash: string;
  /** Hash of this record. */
  hash: string;
}

/** Filters of {@link AuditApi.query}. */
export interface AuditQuery {
  /** Only this action. */
  action?: string;
  /** Only this outcome. */
  outcome?: AuditOutcome;
  /** Only records whose actor or acted-for identity has this name. */
  identityName?: string;
  /** Only this resource. */
  resource?: string;
  /** Only records at or after this time. */
  since?: Date | string;
  /** Only records before this time. */
  until?: Date | string;
  /** Only records after this sequence number (for tailing). */
  afterSeq?: number;
  /** At most this many (1-1000, default 100). */
  limit?: number;
}

/** The result of verifying the audit hash chain. */
export interface AuditVerifyResult {
  /** Whether the chain is intact. */
  ok: boolean;
  /** How many records were checked. */
  records: number;
  /** The last sequence number. */
  headSeq: number;
  /** Set when the verification started at a checkpoint: the records after it were read. */
  fromSeq?: number;
  /** The first broken record, if any. */
  brokenAt?: number;
  /** What is wrong, if anything. */
  reason?: string;
  /** When intact: a checkpoint of the verified head, signed now; keep it for the next verification. */
  checkpoint?: AuditCheckpoint;
}

/**
 * A signed statement of a tenant's audit chain: `seq` records ending in `hash` at `time`.
 * Keep it outside the Vault; a later verification against it detects a history that was
 * rewritten, cut off or rolled back.
 */
export interface AuditCheckpoint {
  tenant: string;
  seq: number;
  hash: string;
  time: string;
  /** First 16 hex digits of SHA-256 of the raw Ed25519 public key. */
  keyId: string;
  /** Ed25519, base64. */
  signature: string;
}

/** The key that signs a tenant's checkpoints. */
export interface AuditPublicKey {
  tenant: string;
  algorithm: 'Ed25519';
  keyId: string;
  /** SPKI PEM. */
  publicKey: string;
}

/** The result of {@link AuditApi.lookup}. */
export interface ValueLookupResult {
  /** Whether the value was ever issued through a lease. */
  issued: boolean;
  /** How many audit records carry the value (issues, reads, uses). */
  matches: number;
  /** The first (oldest) of those records, 1,000 at most. */
  records: AuditRecord[];
  /** True when there are more matches than `records` holds. */
  truncated: boolean;
}
