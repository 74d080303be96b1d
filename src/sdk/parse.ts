/**
 * Light, hand-written decoding of API responses (the SDK carries no zod): checks the fields
 * the SDK relies on, turns timestamps into Dates, and fails with a clear message when the
 * server answered something that is not the Vault API.
 */
import type {
  AuditCheckpoint,
  AuditPublicKey,
  AuditRecord,
  AuditVerifyResult,
  BulkRevokeResult,
  CreatedToken,
  Credential,
  CredentialType,
  CredentialVersion,
  DynamicSpec,
  Identity,
  IdentityRecord,
  IdentityType,
  Lease,
  LeaseEvent,
  LeaseState,
  Policy,
  PolicyRule,
  RevocationState,
  Tenant,
  TokenInfo,
  ValueLookupResult,
} from './types.js';

export class ResponseShapeError extends Error {
  constructor(path: string, expected: string) {
    super(`unexpected response from the server: ${path} is not ${expected}`);
    this.name = 'ResponseShapeError';
  }
}

type Json = Record<string, unknown>;

export function obj(value: unknown, path: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ResponseShapeError(path, 'an object');
  }
  return value as Json;
}

function str(o: Json, key: string, path: string): string {
  const value = o[key];
  if (typeof value !== 'string') throw new ResponseShapeError(`${path}.${key}`, 'a string');
  return value;
}

function optStr(o: Json, key: string, path: string): string | undefined {
  return o[key] === undefined || o[key] === null ? undefined : str(o, key, path);
}

function num(o: Json, key: string, path: string): number {
  const value = o[key];
  if (typeof value !== 'number') throw new ResponseShapeError(`${path}.${key}`, 'a number');
  return value;
}

function bool(o: Json, key: string, path: string): boolean {
  const value = o[key];
  if (typeof value !== 'boolean') throw new ResponseShapeError(`${path}.${key}`, 'a boolean');
  return value;
}

function date(o: Json, key: string, path: string): Date {
  const parsed = new Date(str(o, key, path));
  if (Number.isNaN(parsed.getTime())) throw new ResponseShapeError(`${path}.${key}`, 'a timestamp');
  return parsed;
}

function optDate(o: Json, key: string, path: string): Date | undefined {
  return o[key] === undefined || o[key] === null ? undefined : date(o, key, path);
}

export function arr<T>(o: Json, key: string, path: string, item: (value: unknown, path: string) => T): T[] {
  const value = o[key];
  if (!Array.isArray(value)) throw new ResponseShapeError(`${path}.${key}`, 'an array');
  return value.map((entry, index) => item(entry, `${path}.${key}[${index}]`));
}

function strings(o: Json, key: string, path: string): string[] {
  return arr(o, key, path, (value, itemPath) => {
    if (typeof value !== 'string') throw new ResponseShapeError(itemPath, 'a string');
    return value;
  });
}

function labels(o: Json, key: string, path: string): Record<string, string> | undefined {
  if (o[key] === undefined || o[key] === null) return undefined;
  const record = obj(o[key], `${path}.${key}`);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(record)) {
    if (typeof value === 'string') out[name] = value;
  }
  return out;
}

/** Copies only the optional fields that are present, so objects carry no `undefined` keys. */
function withOptional<T extends object>(base: T, optional: Record<string, unknown>): T {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(optional)) {
    if (value !== undefined) out[key] = value;
  }
  return out as T;
}

export function parseIdentity(value: unknown, path = 'identity'): Identity {
  const o = obj(value, path);
  return { type: str(o, 'type', path) as IdentityType, name: str(o, 'name', path) };
}

function optIdentity(o: Json, key: string, path: string): Identity | undefined {
  return o[key] === undefined || o[key] === null ? undefined : parseIdentity(o[key], `${path}.${key}`);
}

/** A dynamic credential's engine settings (the engine name and what each lease's account may do). */
function optDynamic(o: Json, key: string, path: string): DynamicSpec | undefined {
  if (o[key] === undefined || o[key] === null) return undefined;
  const at = `${path}.${key}`;
  const d = obj(o[key], at);
  const engine = str(d, 'engine', at);
  if (engine === 'postgres')
    return withOptional<DynamicSpec>(
      { engine, creationStatements: strings(d, 'creationStatements', at) },
      { scramIterations: typeof d.scramIterations === 'number' ? d.scramIterations : undefined },
    );
  if (engine === 'redis') return { engine, aclRules: strings(d, 'aclRules', at) };
  throw new ResponseShapeError(`${at}.engine`, 'a known engine (postgres, redis)');
}

function optRevocations(o: Json, key: string, path: string): RevocationState | undefined {
  if (o[key] === undefined || o[key] === null) return undefined;
  const at = `${path}.${key}`;
  const r = obj(o[key], at);
  return withOptional<RevocationState>(
    { failing: num(r, 'failing', at) },
    {
      attempts: typeof r.attempts === 'number' ? r.attempts : undefined,
      lastError: optStr(r, 'lastError', at),
      nextAttemptAt: optStr(r, 'nextAttemptAt', at),
    },
  );
}

export function parseVersion(entry: unknown, path: string): CredentialVersion {
  const v = obj(entry, path);
  return {
    version: num(v, 'version', path),
    createdAt: date(v, 'createdAt', path),
    fingerprint: str(v, 'fingerprint', path),
  };
}

export function parseCredential(value: unknown, path = 'credential'): Credential {
  const o = obj(value, path);
  const leaseDefaults = o.leases === undefined ? undefined : obj(o.leases, `${path}.leases`);
  return withOptional<Credential>(
    {
      name: str(o, 'name', path),
      type: str(o, 'type', path) as CredentialType,
      metadata: labels(o, 'metadata', path) ?? {},
      currentVersion: num(o, 'currentVersion', path),
      versions: arr(o, 'versions', path, parseVersion),
      createdAt: date(o, 'createdAt', path),
      updatedAt: date(o, 'updatedAt', path),
    },
    {
      dynamic: optDynamic(o, 'dynamic', path),
      revocations: optRevocations(o, 'revocations', path),
      leases:
        leaseDefaults &&
        withOptional(
          {},
          {
            defaultTtl: optStr(leaseDefaults, 'defaultTtl', `${path}.leases`),
            maxTtl: optStr(leaseDefaults, 'maxTtl', `${path}.leases`),
          },
        ),
    },
  );
}

export function parseLease(value: unknown, path = 'lease'): Lease {
  const o = obj(value, path);
  return withOptional<Lease>(
    {
      id: str(o, 'id', path),
      tenant: str(o, 'tenant', path),
      credentialName: str(o, 'credentialName', path),
      version: num(o, 'version', path),
      identity: parseIdentity(o.identity, `${path}.identity`),
      issuedBy: parseIdentity(o.issuedBy, `${path}.issuedBy`),
      issuedAt: date(o, 'issuedAt', path),
      expiresAt: date(o, 'expiresAt', path),
      maxExpiresAt: date(o, 'maxExpiresAt', path),
      renewable: bool(o, 'renewable', path),
      renewCount: num(o, 'renewCount', path),
      state: str(o, 'state', path) as LeaseState,
    },
    {
      revokedAt: optDate(o, 'revokedAt', path),
      revokeReason: optStr(o, 'revokeReason', path),
      labels: labels(o, 'labels', path),
      value: optStr(o, 'value', path),
      grantedTtlSeconds: typeof o.grantedTtlSeconds === 'number' ? o.grantedTtlSeconds : undefined,
      dynamic:
        o.dynamic === undefined || o.dynamic === null
          ? undefined
          : {
              engine: str(obj(o.dynamic, `${path}.dynamic`), 'engine', `${path}.dynamic`),
              username: str(obj(o.dynamic, `${path}.dynamic`), 'username', `${path}.dynamic`),
            },
    },
  );
}

export function parseLeaseEvent(value: unknown, path = 'event'): LeaseEvent {
  const o = obj(value, path);
  const { value: _dropped, ...lease } = parseLease(o.lease, `${path}.lease`);
  return { type: str(o, 'type', path) as LeaseEvent['type'], lease };
}

export function parseBulkRevoke(value: unknown, path = 'result'): BulkRevokeResult {
  const o = obj(value, path);
  return {
    revoked: num(o, 'revoked', path),
    leaseIds: strings(o, 'leaseIds', path),
    // Servers before the cap listed every id.
    truncated: o.truncated === true,
  };
}

export function parseTokenInfo(value: unknown, path = 'token'): TokenInfo {
  const o = obj(value, path);
  return withOptional<TokenInfo>(
    {
      accessor: str(o, 'accessor', path),
      tenant: str(o, 'tenant', path),
      identity: parseIdentity(o.identity, `${path}.identity`),
      policies: strings(o, 'policies', path),
      issuedAt: date(o, 'issuedAt', path),
      expiresAt: date(o, 'expiresAt', path),
    },
    {
      displayName: optStr(o, 'displayName', path),
      createdBy: optIdentity(o, 'createdBy', path),
      system: typeof o.system === 'boolean' ? o.system : undefined,
      controllerOf: parseControllerOf(o.controllerOf, `${path}.controllerOf`),
    },
  );
}

function parseControllerOf(value: unknown, path: string): TokenInfo['controllerOf'] {
  if (value === undefined) return undefined;
  const o = obj(value, path);
  return withOptional<NonNullable<TokenInfo['controllerOf']>>({}, { cluster: optStr(o, 'cluster', path) });
}

export function parseCreatedToken(value: unknown, path = 'token'): CreatedToken {
  const o = obj(value, path);
  return { ...parseTokenInfo(o, path), token: str(o, 'token', path) };
}

function parseRule(value: unknown, path: string): PolicyRule {
  const o = obj(value, path);
  return withOptional<PolicyRule>(
    { actions: strings(o, 'actions', path) as PolicyRule['actions'] },
    {
      credentials: o.credentials === undefined ? undefined : strings(o, 'credentials', path),
      labels: labels(o, 'labels', path),
      maxTtl: optStr(o, 'maxTtl', path),
    },
  );
}

export function parsePolicy(value: unknown, path = 'policy'): Policy {
  const o = obj(value, path);
  return withOptional<Policy>(
    {
      name: str(o, 'name', path),
      rules: arr(o, 'rules', path, parseRule),
      createdAt: date(o, 'createdAt', path),
      updatedAt: date(o, 'updatedAt', path),
    },
    {
      description: optStr(o, 'description', path),
      actFor: o.actFor === undefined ? undefined : arr(o, 'actFor', path, parseIdentity),
    },
  );
}

export function parseIdentityRecord(value: unknown, path = 'identity'): IdentityRecord {
  const o = obj(value, path);
  return withOptional<IdentityRecord>(
    {
      type: str(o, 'type', path) as IdentityType,
      name: str(o, 'name', path),
      policies: strings(o, 'policies', path),
      createdAt: date(o, 'createdAt', path),
      updatedAt: date(o, 'updatedAt', path),
    },
    { metadata: labels(o, 'metadata', path) },
  );
}

export function parseTenant(value: unknown, path = 'tenant'): Tenant {
  const o = obj(value, path);
  return withOptional<Tenant>(
    { id: str(o, 'id', path), createdAt: date(o, 'createdAt', path) },
    { description: optStr(o, 'description', path) },
  );
}

export function parseAuditRecord(value: unknown, path = 'record'): AuditRecord {
  const o = obj(value, path);
  return withOptional<AuditRecord>(
    {
      seq: num(o, 'seq', path),
      time: date(o, 'time', path),
      requestId: str(o, 'requestId', path),
      tenant: str(o, 'tenant', path),
      actor: parseIdentity(o.actor, `${path}.actor`),
      action: str(o, 'action', path),
      resource: str(o, 'resource', path),
      outcome: str(o, 'outcome', path) as AuditRecord['outcome'],
      prevHash: str(o, 'prevHash', path),
      hash: str(o, 'hash', path),
    },
    {
      v: o.v === 2 ? 2 : undefined,
      actingFor: optIdentity(o, 'actingFor', path),
      delegatedBy: optIdentity(o, 'delegatedBy', path),
      reason: optStr(o, 'reason', path),
      source: optStr(o, 'source', path),
      valueHmac: optStr(o, 'valueHmac', path),
    },
  );
}

export function parseAuditVerify(value: unknown, path = 'result'): AuditVerifyResult {
  const o = obj(value, path);
  return withOptional<AuditVerifyResult>(
    { ok: bool(o, 'ok', path), records: num(o, 'records', path), headSeq: num(o, 'headSeq', path) },
    {
      brokenAt: typeof o.brokenAt === 'number' ? o.brokenAt : undefined,
      fromSeq: typeof o.fromSeq === 'number' ? o.fromSeq : undefined,
      reason: optStr(o, 'reason', path),
      checkpoint:
        o.checkpoint === undefined ? undefined : parseAuditCheckpoint(o.checkpoint, `${path}.checkpoint`),
    },
  );
}

export function parseAuditCheckpoint(value: unknown, path = 'checkpoint'): AuditCheckpoint {
  const o = obj(value, path);
  return {
    tenant: str(o, 'tenant', path),
    seq: num(o, 'seq', path),
    hash: str(o, 'hash', path),
    time: str(o, 'time', path),
    keyId: str(o, 'keyId', path),
    signature: str(o, 'signature', path),
  };
}

export function parseAuditPublicKey(value: unknown, path = 'key'): AuditPublicKey {
  const o = obj(value, path);
  return {
    tenant: str(o, 'tenant', path),
    algorithm: 'Ed25519',
    keyId: str(o, 'keyId', path),
    publicKey: str(o, 'publicKey', path),
  };
}

export function parseValueLookup(value: unknown, path = 'result'): ValueLookupResult {
  const o = obj(value, path);
  const records = arr(o, 'records', path, parseAuditRecord);
  // Servers before the cap answered every record, without a count.
  const matches = typeof o.matches === 'number' ? o.matches : records.length;
  const truncated = typeof o.truncated === 'boolean' ? o.truncated : false;
  return { issued: bool(o, 'issued', path), matches, records, truncated };
}
