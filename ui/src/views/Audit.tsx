import { useState } from 'preact/hooks';
import { useLoad } from '../components/useLoad.js';
import type { Api } from '../lib/api.js';
import { identityKey } from '../lib/leases.js';
import type { AuditRecord } from '../lib/types.js';

const SHOWN = 200;
const PAGE = 1000;
const MAX_PAGES = 20;

interface AuditFilter {
  identityName: string;
  resource: string;
  action: string;
  outcome: '' | 'allowed' | 'denied' | 'error';
}

const empty: AuditFilter = { identityName: '', resource: '', action: '', outcome: '' };

/** The newest records matching the filter (the API pages oldest first, by `afterSeq`). */
async function newest(api: Api, filter: AuditFilter): Promise<{ records: AuditRecord[]; more: boolean }> {
  let records: AuditRecord[] = [];
  let afterSeq: number | undefined;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const answer = await api.queryAudit({ ...filter, afterSeq, limit: PAGE });
    records = records.concat(answer.records).slice(-SHOWN - 1);
    if (answer.records.length < PAGE) break;
    afterSeq = answer.records.at(-1)!.seq;
  }
  return { records: records.slice(-SHOWN).reverse(), more: records.length > SHOWN };
}

export function AuditView({ api }: { api: Api }) {
  const [draft, setDraft] = useState<AuditFilter>(empty);
  const [filter, setFilter] = useState<AuditFilter>(empty);
  const records = useLoad(() => newest(api, filter), [api, filter]);
  const verify = useLoad(() => api.verifyAudit(), [api]);
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
          {!verify.loading && verify.data?.ok && (
            <span class="ok">
              ✓ Chain intact: {verify.data.records} records to seq {verify.data.headSeq}
              {verify.data.checkpoint ? `, checkpoint signed by key ${verify.data.checkpoint.keyId}` : ''}
            </span>
          )}
          {!verify.loading && verify.data && !verify.data.ok && (
            <span class="error">
              ✗ Chain broken at seq {verify.data.brokenAt ?? '?'}: {verify.data.reason ?? 'unknown reason'}
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
          Resource{' '}
          <input name="resource" placeholder="e.g. credential name or lease id" {...field('resource')} />
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
      <ol class="timeline" data-testid="audit-records">
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
