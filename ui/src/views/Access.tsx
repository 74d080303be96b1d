import { useState } from 'preact/hooks';
import { useLoad } from '../components/useLoad.js';
import { type Api, describeError } from '../lib/api.js';
import type { IdentityRecord, Policy, PolicyBody, TokenInfo } from '../lib/types.js';

/** Identities, policies and tokens: read, and edited where the caller's policy allows (the API decides). */
export function AccessView({ api, me }: { api: Api; me: TokenInfo | undefined }) {
  const identities = useLoad(() => api.listIdentities(), [api]);
  const policies = useLoad(() => api.listPolicies(), [api]);
  return (
    <section aria-labelledby="access-title">
      <h1 id="access-title">Identities, tokens and policies</h1>
      <h2>Your token</h2>
      {me && (
        <dl class="kv">
          <dt>Identity</dt>
          <dd>
            {me.identity.type}/{me.identity.name}
          </dd>
          <dt>Accessor</dt>
          <dd>
            <code>{me.accessor}</code>
          </dd>
          <dt>Policies</dt>
          <dd>{me.policies.join(', ') || 'none'}</dd>
          <dt>Expires</dt>
          <dd>{new Date(me.expiresAt).toLocaleString()}</dd>
        </dl>
      )}
      <TokenLookup api={api} />
      <h2>Identities</h2>
      {identities.error && (
        <p role="alert" class="error">
          {identities.error}
        </p>
      )}
      {identities.data && identities.data.identities.length === 0 && <p class="empty">No identities.</p>}
      <ul class="plain cards">
        {identities.data?.identities.map((identity) => (
          <IdentityCard
            key={`${identity.type}/${identity.name}`}
            api={api}
            identity={identity}
            onSaved={identities.reload}
          />
        ))}
      </ul>
      <h2>Policies</h2>
      {policies.error && (
        <p role="alert" class="error">
          {policies.error}
        </p>
      )}
      <ul class="plain cards">
        {policies.data?.policies.map((policy) => (
          <PolicyCard key={policy.name} api={api} policy={policy} onSaved={policies.reload} />
        ))}
      </ul>
    </section>
  );
}

function TokenLookup({ api }: { api: Api }) {
  const [accessor, setAccessor] = useState('');
  const [info, setInfo] = useState<TokenInfo>();
  const [message, setMessage] = useState<string>();
  return (
    <form
      class="filters"
      aria-label="Look up a token"
      onSubmit={async (e) => {
        e.preventDefault();
        setMessage(undefined);
        try {
          setInfo(await api.lookupToken(accessor.trim()));
        } catch (err) {
          setInfo(undefined);
          setMessage(describeError(err));
        }
      }}
    >
      <label>
        Token accessor{' '}
        <input value={accessor} placeholder="acc_…" onInput={(e) => setAccessor(e.currentTarget.value)} />
      </label>
      <button type="submit" disabled={!accessor.trim()}>
        Look up
      </button>
      {info && (
        <p class="ok">
          {info.identity.type}/{info.identity.name}, policies {info.policies.join(', ') || 'none'}, expires{' '}
          {new Date(info.expiresAt).toLocaleString()}
          {info.displayName ? ` (${info.displayName})` : ''}
        </p>
      )}
      {message && (
        <p role="alert" class="error">
          {message}
        </p>
      )}
    </form>
  );
}

function IdentityCard(props: { api: Api; identity: IdentityRecord; onSaved(): void }) {
  const { identity } = props;
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(identity.policies.join(', '));
  const [message, setMessage] = useState<string>();
  const id = `identity-${identity.type}-${identity.name}`.replace(/[^A-Za-z0-9_-]/g, '_');
  return (
    <li class="card">
      <strong>
        {identity.type}/{identity.name}
      </strong>
      <div class="small">policies: {identity.policies.join(', ') || 'none'}</div>
      {editing ? (
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            const policies = text
              .split(',')
              .map((p) => p.trim())
              .filter(Boolean);
            try {
              await props.api.putIdentity(identity, policies);
              setEditing(false);
              setMessage(undefined);
              props.onSaved();
            } catch (err) {
              setMessage(describeError(err));
            }
          }}
        >
          <label for={id}>Policies (comma-separated)</label>
          <input id={id} value={text} onInput={(e) => setText(e.currentTarget.value)} />
          <button type="submit">Save</button>{' '}
          <button type="button" class="secondary" onClick={() => setEditing(false)}>
            Cancel
          </button>
        </form>
      ) : (
        <button type="button" class="secondary" onClick={() => setEditing(true)}>
          Edit policies
          <span class="sr-only">
            {' '}
            of {identity.type}/{identity.name}
          </span>
        </button>
      )}
      {message && (
        <p role="alert" class="error">
          {message}
        </p>
      )}
    </li>
  );
}

function PolicyCard(props: { api: Api; policy: Policy; onSaved(): void }) {
  const { policy } = props;
  const body: PolicyBody = {
    ...(policy.description ? { description: policy.description } : {}),
    rules: policy.rules,
    ...(policy.actFor ? { actFor: policy.actFor } : {}),
  };
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(JSON.stringify(body, null, 2));
  const [message, setMessage] = useState<string>();
  const id = `policy-${policy.name}`.replace(/[^A-Za-z0-9_-]/g, '_');
  return (
    <li class="card">
      <strong>{policy.name}</strong>
      {policy.description && <div class="small">{policy.description}</div>}
      {editing ? (
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            let parsed: PolicyBody;
            try {
              parsed = JSON.parse(text) as PolicyBody;
            } catch (err) {
              setMessage(`The policy is not valid JSON: ${(err as Error).message}. Nothing was saved.`);
              return;
            }
            try {
              await props.api.putPolicy(policy.name, parsed);
              setEditing(false);
              setMessage(undefined);
              props.onSaved();
            } catch (err) {
              setMessage(describeError(err));
            }
          }}
        >
          <label for={id}>Policy (JSON: description, rules, actFor)</label>
          <textarea
            id={id}
            rows={12}
            spellcheck={false}
            value={text}
            onInput={(e) => setText(e.currentTarget.value)}
          />
          <button type="submit">Save</button>{' '}
          <button type="button" class="secondary" onClick={() => setEditing(false)}>
            Cancel
          </button>
        </form>
      ) : (
        <>
          <pre class="policy">{JSON.stringify(body.rules, null, 1)}</pre>
          <button type="button" class="secondary" onClick={() => setEditing(true)}>
            Edit<span class="sr-only"> policy {policy.name}</span>
          </button>
        </>
      )}
      {message && (
        <p role="alert" class="error">
          {message}
        </p>
      )}
    </li>
  );
}
