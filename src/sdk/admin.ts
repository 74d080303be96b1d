/** The smaller API groups: audit, tokens, policies, identities, tenants and keys. */

import { checkpointSignedBy } from './checkpoint.js';
import { type Http, seg } from './http.js';
import { allPages } from './pages.js';
import {
  arr,
  obj,
  parseAuditCheckpoint,
  parseAuditPublicKey,
  parseAuditRecord,
  parseAuditVerify,
  parseCreatedToken,
  parseIdentityRecord,
  parsePolicy,
  parseTenant,
  parseTokenInfo,
  parseValueLookup,
  ResponseShapeError,
} from './parse.js';
import type {
  AuditCheckpoint,
  AuditPublicKey,
  AuditQuery,
  AuditRecord,
  AuditVerifyResult,
  CreatedToken,
  CreateTokenInput,
  IdentityInput,
  IdentityRecord,
  IdentityType,
  Policy,
  PolicyBody,
  Tenant,
  TokenInfo,
  ValueLookupResult,
} from './types.js';

type Options = { signal?: AbortSignal };
const okResult = () => undefined;
const iso = (value: Date | string | undefined) => (value instanceof Date ? value.toISOString() : value);

/** The audit log: every decision, hash-chained per tenant. */
export class AuditApi {
  readonly #http: Http;

  /** @internal Use `vault.audit`. */
  constructor(http: Http) {
    this.#http = http;
  }

  /**
   * Audit records matching the filters, oldest first, up to `limit`. Use `afterSeq` to page or
   * tail. The server reads a bounded number of records per request; when a selective filter
   * needs more, this follows the server's `next` until `limit` records are found or the chain
   * ends, so the answer is the same as one unbounded scan.
   */
  async query(query: AuditQuery = {}, options: Options = {}): Promise<AuditRecord[]> {
    const limit = query.limit ?? 100;
    const found: AuditRecord[] = [];
    let afterSeq = query.afterSeq;
    for (;;) {
      const page = await this.#page(
        { ...query, limit: limit - found.length, ...(afterSeq !== undefined ? { afterSeq } : {}) },
        options,
      );
      found.push(...page.records);
      if (page.next === undefined || found.length >= limit) return found;
      afterSeq = page.next;
    }
  }

  /**
   * The records after `afterSeq` matching the filters (one answer: up to `limit`, or what a
   * scan budget of the server found), and `through`, the last record read, matching or not:
   * the `afterSeq` of the next poll. So a poll for a rare action reads only what is new.
   */
  async poll(
    query: AuditQuery & { afterSeq: number },
    options: Options = {},
  ): Promise<{ records: AuditRecord[]; through: number; more: boolean }> {
    const page = await this.#page(query, options);
    return {
      records: page.records,
      through: page.through ?? query.afterSeq,
      more: page.next !== undefined,
    };
  }

  /**
   * The newest `limit` (default 100) records matching the filters, oldest first: what `vault
   * audit tail` shows. Read back from the head, so its cost does not grow with the chain;
   * follows the server's `before` until `limit` records are found or the chain's start.
   */
  async tail(query: Omit<AuditQuery, 'afterSeq'> = {}, options: Options = {}): Promise<AuditRecord[]> {
    const limit = query.limit ?? 100;
    let found: AuditRecord[] = [];
    let beforeSeq: number | undefined;
    for (;;) {
      const page = await this.#page(
        {
          ...query,
          newest: true,
          limit: Math.min(1000, limit - found.length),
          ...(beforeSeq !== undefined ? { beforeSeq } : {}),
        },
        options,
      );
      found = [...page.records, ...found];
      if (page.before === undefined || found.length >= limit) return found;
      beforeSeq = page.before;
    }
  }

  /** One `GET /v1/audit` answer: its records and where to go on (`next` forwards, `before` back). */
  #page(
    query: AuditQuery & { newest?: boolean; beforeSeq?: number },
    options: Options,
  ): Promise<{ records: AuditRecord[]; next?: number; before?: number; through?: number }> {
    const seq = (o: Record<string, unknown>, key: 'next' | 'before' | 'through') => {
      const value = o[key];
      if (value !== undefined && typeof value !== 'number')
        throw new ResponseShapeError(`response.${key}`, 'a number');
      return value;
    };
    return this.#http.json(
      'get',
      '/v1/audit',
      (body) => {
        const o = obj(body, 'response');
        const [next, before, through] = [seq(o, 'next'), seq(o, 'before'), seq(o, 'through')];
        // Each answer must move on, or following it would never end.
        if (next !== undefined && query.afterSeq !== undefined && next <= query.afterSeq)
          throw new ResponseShapeError('response.next', `a seq after ${query.afterSeq}`);
        if (before !== undefined && query.beforeSeq !== undefined && before >= query.beforeSeq)
          throw new ResponseShapeError('response.before', `a seq before ${query.beforeSeq}`);
        return {
          records: arr(o, 'records', 'response', parseAuditRecord),
          ...(next !== undefined ? { next } : {}),
          ...(before !== undefined ? { before } : {}),
          ...(through !== undefined ? { through } : {}),
        };
      },
      { query: { ...query, since: iso(query.since), until: iso(query.until) }, ...options },
    );
  }

  /**
   * Verifies the tenant's chain; `ok: false` names the first broken record. With `since` (a
   * checkpoint you kept, or every checkpoint you kept), it also proves the log still extends
   * them: a rewritten, cut-off or rolled-back history fails. Give all you hold (a SIEM's
   * stream file has many): after a rollback the server signs new checkpoints of the forked
   * history, so only an older one shows the fork; the newest is checked by the server, each
   * other one against the record at its position. With `publicKey` (the SPKI PEM you pinned),
   * every checkpoint given and the one returned are checked here too, so a server that lies
   * about them fails.
   */
  async verify(
    check: {
      since?: AuditCheckpoint | AuditCheckpoint[];
      publicKey?: string;
      /** Read only the records after the newest `since` (bounded by what was appended since). */
      fromCheckpoint?: boolean;
    } = {},
    options: Options = {},
  ): Promise<AuditVerifyResult> {
    const { publicKey } = check;
    const given = check.since === undefined ? [] : Array.isArray(check.since) ? check.since : [check.since];
    const broken = (reason: string, brokenAt?: number): AuditVerifyResult => ({
      ok: false,
      records: 0,
      headSeq: 0,
      ...(brokenAt !== undefined ? { brokenAt } : {}),
      reason,
    });
    if (publicKey) {
      for (const checkpoint of given) {
        if (!(await checkpointSignedBy(checkpoint, publicKey))) {
          return broken(`the checkpoint at ${checkpoint.seq} is not signed by the pinned public key`);
        }
      }
    }
    // Two signed checkpoints that disagree at one position prove a fork, whatever the store says.
    const bySeq = new Map<number, AuditCheckpoint>();
    for (const checkpoint of given) {
      const other = bySeq.get(checkpoint.seq);
      if (other && (other.hash !== checkpoint.hash || other.tenant !== checkpoint.tenant)) {
        return broken(
          `two checkpoints at ${checkpoint.seq} (${other.time}, ${checkpoint.time}) disagree: the history was rewritten or rolled back between them`,
          checkpoint.seq,
        );
      }
      bySeq.set(checkpoint.seq, checkpoint);
    }
    const ordered = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
    const since = ordered.at(-1);
    const result = since
      ? await this.#http.json('post', '/v1/audit/verify', parseAuditVerify, {
          body: { since, ...(check.fromCheckpoint ? { from: 'checkpoint' } : {}) },
          ...options,
        })
      : await this.#http.json('get', '/v1/audit/verify', parseAuditVerify, options);
    if (!result.ok) return result;
    if (publicKey) {
      const latest = result.checkpoint;
      if (!latest || !(await checkpointSignedBy(latest, publicKey))) {
        return {
          ...result,
          ok: false,
          reason: 'the server returned no checkpoint signed by the pinned public key',
        };
      }
      if (since && (latest.seq < since.seq || latest.tenant !== since.tenant)) {
        return { ...result, ok: false, reason: 'the returned checkpoint does not extend the one given' };
      }
    }
    // The chain now verified extends the newest checkpoint; each older one must name the
    // record the chain has at its position.
    for (const older of ordered.slice(0, -1)) {
      if (older.tenant !== since!.tenant) {
        return { ...result, ok: false, reason: `the checkpoints are of different tenants` };
      }
      if (older.seq === 0) continue;
      const [record] = await this.query({ afterSeq: older.seq - 1, limit: 1 }, options);
      if (!record || record.seq !== older.seq || record.hash !== older.hash) {
        return {
          ...result,
          ok: false,
          brokenAt: older.seq,
          reason: `record ${older.seq} differs from the checkpoint at ${older.seq} (${older.time}): the history was rewritten or rolled back after it`,
        };
      }
    }
    return result;
  }

  /** Signs a checkpoint of the tenant's chain now (after verifying the records since the last one). */
  checkpoint(options: Options = {}): Promise<AuditCheckpoint> {
    return this.#http.json(
      'post',
      '/v1/audit/checkpoints',
      (body) => parseAuditCheckpoint(obj(body, 'response').checkpoint, 'checkpoint'),
      options,
    );
  }

  /** The Ed25519 key that signs the tenant's checkpoints (also at /.well-known/vault/audit-keys/TENANT). */
  publicKey(options: Options = {}): Promise<AuditPublicKey> {
    return this.#http.json('get', '/v1/audit/public-key', parseAuditPublicKey, options);
  }

  /** Whether a (leaked) value was ever issued by a lease, found by keyed HMAC; the value is not stored. */
  lookup(value: string, options: Options = {}): Promise<ValueLookupResult> {
    return this.#http.json('post', '/v1/audit/lookup', parseValueLookup, { body: { value }, ...options });
  }
}

/** Tokens: create them for identities, look them up and revoke them by accessor. */
export class TokensApi {
  readonly #http: Http;

  /** @internal Use `vault.tokens`. */
  constructor(http: Http) {
    this.#http = http;
  }

  /** Creates a token for an identity; the secret `token` field is returned only now. */
  create(input: CreateTokenInput, options: Options = {}): Promise<CreatedToken> {
    return this.#http.json('post', '/v1/auth/tokens', parseCreatedToken, { body: input, ...options });
  }

  /** Looks a token up by accessor. */
  lookup(accessor: string, options: Options = {}): Promise<TokenInfo> {
    return this.#http.json('get', `/v1/auth/tokens/${seg(accessor)}`, parseTokenInfo, options);
  }

  /** Revokes a token by accessor. */
  async revoke(accessor: string, options: Options = {}): Promise<void> {
    await this.#http.json('delete', `/v1/auth/tokens/${seg(accessor)}`, okResult, options);
  }
}

/** Policies: what identities may do with which credentials (default deny). */
export class PoliciesApi {
  readonly #http: Http;

  /** @internal Use `vault.policies`. */
  constructor(http: Http) {
    this.#http = http;
  }

  /** Every policy of the tenant (the server answers 1,000 a page; this follows them all). */
  list(options: Options = {}): Promise<Policy[]> {
    return allPages(this.#http, '/v1/policies', 'policies', parsePolicy, {}, options);
  }

  /** One policy. */
  get(name: string, options: Options = {}): Promise<Policy> {
    return this.#http.json('get', `/v1/policies/${seg(name)}`, parsePolicy, options);
  }

  /** Creates or replaces a policy. */
  put(name: string, body: PolicyBody, options: Options = {}): Promise<Policy> {
    return this.#http.json('put', `/v1/policies/${seg(name)}`, parsePolicy, { body, ...options });
  }

  /** Deletes a policy. */
  async delete(name: string, options: Options = {}): Promise<void> {
    await this.#http.json('delete', `/v1/policies/${seg(name)}`, okResult, options);
  }
}

/** Identities: people, agents and workloads, with the policies their tokens carry. */
export class IdentitiesApi {
  readonly #http: Http;

  /** @internal Use `vault.identities`. */
  constructor(http: Http) {
    this.#http = http;
  }

  /** Every identity of the tenant (the server answers 1,000 a page; this follows them all). */
  list(options: Options = {}): Promise<IdentityRecord[]> {
    return allPages(this.#http, '/v1/identities', 'identities', parseIdentityRecord, {}, options);
  }

  /** One identity. */
  get(type: IdentityType, name: string, options: Options = {}): Promise<IdentityRecord> {
    return this.#http.json('get', `/v1/identities/${seg(type)}/${seg(name)}`, parseIdentityRecord, options);
  }

  /** Creates or updates an identity. */
  put(
    type: IdentityType,
    name: string,
    input: IdentityInput = {},
    options: Options = {},
  ): Promise<IdentityRecord> {
    return this.#http.json('put', `/v1/identities/${seg(type)}/${seg(name)}`, parseIdentityRecord, {
      body: input,
      ...options,
    });
  }

  /** Deletes an identity. */
  async delete(type: IdentityType, name: string, options: Options = {}): Promise<void> {
    await this.#http.json('delete', `/v1/identities/${seg(type)}/${seg(name)}`, okResult, options);
  }
}

/** Tenants (system tokens only). */
export class TenantsApi {
  readonly #http: Http;

  /** @internal Use `vault.tenants`. */
  constructor(http: Http) {
    this.#http = http;
  }

  /** Every tenant (every page). */
  list(options: Options = {}): Promise<Tenant[]> {
    return allPages(this.#http, '/v1/sys/tenants', 'tenants', parseTenant, {}, options);
  }

  /** Creates a tenant and returns it with its first admin token. */
  create(
    input: { id: string; description?: string },
    options: Options = {},
  ): Promise<{ tenant: Tenant; adminToken: CreatedToken }> {
    return this.#http.json(
      'post',
      '/v1/sys/tenants',
      (body) => {
        const o = obj(body, 'response');
        return {
          tenant: parseTenant(o.tenant, 'response.tenant'),
          adminToken: parseCreatedToken(o.adminToken, 'response.adminToken'),
        };
      },
      { body: input, ...options },
    );
  }
}

/** The tenant's key hierarchy. */
export class KeysApi {
  readonly #http: Http;

  /** @internal Use `vault.keys`. */
  constructor(http: Http) {
    this.#http = http;
  }

  /**
   * Key status (versions, rotation progress) as the server reports it: a tenant admin's
   * tenant; for a system token a page of tenants (`limit`, default 100), with `continue`
   * while more may follow (pass it back for the next page).
   */
  status(
    query: { limit?: number; continue?: string } = {},
    options: Options = {},
  ): Promise<Record<string, unknown>> {
    return this.#http.json('get', '/v1/sys/keys', (body) => obj(body, 'response'), {
      query: { ...query },
      ...options,
    });
  }

  /** Rotates the tenant key, re-wrapping every data key. */
  rotate(options: Options = {}): Promise<Record<string, unknown>> {
    return this.#http.json('post', '/v1/sys/keys/rotate', (body) => obj(body, 'response'), options);
  }
}
