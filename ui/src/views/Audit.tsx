import { useState } from 'preact/hooks';
import { useLoad } from '../components/useLoad.js';
import type { Api } from '../lib/api.js';
import { identityKey } from '../lib/leases.js';
import type { AuditCheckpoint, AuditRecord, AuditVerifyResult } from '../lib/types.js';

const SHOWN = 200;
const PAGE = 1000;
const MAX_PAGES = 20;

interface AuditFilter {
  identityName: string;
  /** The credential's own records and those of its leases. */
  credential: string;
  resource: string;
  action: string;
  outcome: '' | 'allowed' | 'denied' | 'error';
}

const empty: AuditFilter = { identityName: '', credential: '', resource: '', action: '', outcome: '' };

/** Audit resources of a credential: itself and every lease of it the API still lists. */
async function resourcesOf(api: Api, credentialName: string): Promise<Set<string>> {
  const resources = new Set([`credential/${credentialName}`]);
  let next: string | undefined;
  do {
    const page = await api.listLeases({ credentialName, limit: 1000, continue: next });
    for (const lease of page.leases) resources.add(`lease/${lease.id}`);
    next = page.continue;
  } while (next && resources.size < MAX_PAGES * PAGE);
  return resources;
}

/**
 * The newest records matching the filter (the API pages oldest first, by `afterSeq`). A
 * credential filter keeps the credential's own records and those of its leases (whose
 * resource is the lease), so it is applied here to every page.
 */
async function newest(api: Api, filter: AuditFilter): Promise<{ records: AuditRecord[]; more: boolean }> {
  const { credential, ...query } = filter;
  const name = credential.trim();
  const resources = name ? await resourcesOf(api, name) : undefined;
  let records: AuditRecord[] = [];
  let afterSeq: number | undefined;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const answer = await api.queryAudit({
      ...query,
      resource: resources ? '' : query.resource,
      afterSeq,
      limit: PAGE,
    });
    const kept = resources ? answer.records.filter((r) => resources.has(r.resource)) : answer.records;
    records = records.concat(kept).slice(-SHOWN - 1);
    if (answer.records.length < PAGE) break;
    afterSeq = answer.records.at(-1)!.seq;
  }
  return { records: records.slice(-SHOWN).reverse(), more: records.length > SHOWN };
}

/**
 * The newest checkpoint this tab has seen, per session: each verification after the first
 * also checks the log still extends it (nothing rewritten, cut off or rolled back since).
 */
const kept = new WeakMap<Api, AuditCheckpoint>();

async function verifyChain(api: Api): Promise<{ result: AuditVerifyResult; since?: AuditCheckpoint }> {
  const since = kept.get(api);
  const result = await api.verifyAudit(since);
  if (result.ok && result.checkpoint) kept.set(api, result.checkpoint);
  return since ? { result, since } : { result };
}

const at = (iso: string) => new Date(iso).toLocaleString();

export function AuditView({ api }: { api: Api }) {
  const [draft, setDraft] = useState<AuditFilter>(empty);
  const [filter, setFilter] = useState<AuditFilter>(empty);
  const records = useLoad(() => newest(api, filter), [api, filter]);
  const verify = useLoad(() => verifyChain(api), [api]);
  const chain = verify.data?.result;
  const field = (name: keyof AuditFilter) => ({
    value: draft[name],
    onInput: (e: Event) => setDraft({ ...draft, [name]: (e.currentTarget as HTMLInputElement).value }),
  });

  return (
    <section aria-labelledby="audit-title">
      <div class="heading-row">
        <h1 id="audit-title">Audit timeline</h1>
        <div class="chain" role="status" data-testid="chain-status">
          {verify.loading && 'Verifying the chain…'}
          {!verify.loading && verify.error && <span class="error">Chain not verified: {verify.error}</span>}
          {!verify.loading && chain?.ok && (
            <span class="ok">
              ✓ Chain intact: {chain.records} records to seq {chain.headSeq}
            </span>
          )}
          {!verify.loading && chain && !chain.ok && (
            <span class="error">
              ✗ Chain broken at seq {chain.brokenAt ?? '?'}: {chain.reason ?? 'unknown reason'}
            </span>
          )}{' '}
          {!verify.loading && chain?.ok && (
            <span class="small" data-testid="checkpoint-status">
              {chain.checkpoint
                ? `Checkpoint at seq ${chain.checkpoint.seq} signed ${at(chain.checkpoint.time)} by key ${chain.checkpoint.keyId}`
                : 'No checkpoint yet (no records)'}
              {verify.data?.since
                ? `; still extends the checkpoint at seq ${verify.data.since.seq} from ${at(verify.data.since.time)}.`
                : '.'}
            </span>
          )}{' '}
          <button type="button" class="secondary" onClick={verify.reload}>
            Verify again
          </button>
        </div>
      </div>
      <form
        class="filters"
        aria-label="Filter audit records"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ ...draft });
        }}
      >
        <label>
          Identity name <input name="identityName" {...field('identityName')} />
        </label>
        <label>
          Credential <input name="credential" placeholder="e.g. stripe-key" {...field('credential')} />
        </label>
        <label>
          Resource starts with{' '}
          <input
            name="resource"
            placeholder="e.g. lease/lease_… or policy/"
            disabled={draft.credential.trim() !== ''}
            {...field('resource')}
          />
        </label>
        <label>
          Action <input name="action" placeholder="e.g. lease.create" {...field('action')} />
        </label>
        <label>
          Outcome{' '}
          <select name="outcome" {...field('outcome')}>
            <option value="">Any</option>
            <option value="allowed">Allowed</option>
            <option value="denied">Denied</option>
            <option value="error">Error</option>
          </select>
        </label>
        <button type="submit">Apply filter</button>
        <button
          type="button"
          class="secondary"
          onClick={() => {
            setDraft(empty);
            setFilter(empty);
          }}
        >
          Clear
        </button>
      </form>
      {records.error && (
        <p role="alert" class="error">
          {records.error}
        </p>
      )}
      {records.data && (
        <p class="summary" aria-live="polite">
          {records.data.records.length === 0
            ? 'No records match.'
            : `Newest ${records.data.records.length} record${records.data.records.length === 1 ? '' : 's'}${records.data.more ? ' (older ones exist)' : ''}.`}
        </p>
      )}
      <ol class="timeline" data-testid="audit-records" aria-busy={records.loading ? 'true' : 'false'}>
        {records.data?.records.map((record) => (
          <li key={record.seq} class={`outcome-${record.outcome}`}>
            <div class="when small muted">
              #{record.seq} · <time dateTime={record.time}>{new Date(record.time).toLocaleString()}</time>
            </div>
            <div>
              <strong>{identityKey(record.actor)}</strong>
              {record.actingFor && (
                <>
                  {' '}
                  acting for <strong>{identityKey(record.actingFor)}</strong>
                </>
              )}
              {record.delegatedBy && <> (delegated by {identityKey(record.delegatedBy)})</>} ·{' '}
              <code>{record.action}</code> <span class="resource">{record.resource}</span> ·{' '}
              <span class={`badge ${record.outcome}`}>{record.outcome}</span>
              {record.reason && <span class="muted"> — {record.reason}</span>}
            </div>
          </li>
        ))}
      </ol>
    </section>
  );
}
