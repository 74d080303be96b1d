/**
 * Reconciles one VaultCredential: the credential in Vault (created from a Secret key, a
 * generator, or left to the API), its lease defaults and labels, and its access rules as a
 * Vault policy attached to the named ServiceAccounts and agents. Deletion (finalizer)
 * revokes the credential's leases. Every Vault write happens only when Vault differs from
 * the spec, and the status is written only when it changes.
 */
import type { Identity } from '../contract/common.js';
import { type Credential, controllerOwnerLabel } from '../contract/credentials.js';
import type { PolicyBody } from '../contract/policies.js';
import { resourceTypes } from '../k8s/api-client.js';
import {
  credentialPolicyPrefix,
  finalizer,
  group,
  type VaultCredentialObject,
  type VaultCredentialStatus,
} from '../k8s/resources.js';
import { durationMs } from '../lib/duration.js';
import {
  secretImportForAnnotation,
  secretImportLabel,
  secretImportLabelValue,
} from '../webhook/annotations.js';
import { readyCondition, sameJson, statusPatch } from './conditions.js';
import {
  dynamicSpecOf,
  dynamicUpdate,
  importedSecretRef,
  revocationsCondition,
  revocationsConditionType,
  revocationsRecheckMs,
  sourceMismatch,
} from './dynamic-source.js';
import {
  addFinalizer,
  type ReconcileOutcome,
  type ReconcilerDeps,
  removeFinalizer,
} from './lease-reconciler.js';
import { formatIdentity, serviceAccountIdentity } from './tenancy.js';

/** Vault label naming the VaultCredential (by uid) that owns a credential. */
export const ownerLabel = controllerOwnerLabel;

export const policyName = (credentialName: string) => `${credentialPolicyPrefix}${credentialName}`;

/**
 * A Secret's value under `key` (decoded) and its resourceVersion, or why it is unusable: the
 * controller was not given its namespace to import from, it has not consented to imports (or
 * does not exist: the two look alike to the controller), it names other VaultCredentials
 * than `importer`, or the key is missing or empty.
 */
export type SecretLookup = (
  namespace: string,
  name: string,
  key: string,
  importer: string,
) =>
  | { value: string; resourceVersion: string }
  | { missing: 'key' | 'empty' }
  | { refused: 'namespace-not-granted' }
  | { refused: 'not-importable' }
  | { refused: 'not-named'; importers: string[] };

/** The Helm value and the flag that give the controller a namespace to import Secrets from. */
const secretNamespacesValue = 'controller.secretImport.namespaces';
const secretNamespacesFlag = '--secret-namespaces';

/** Why a Secret of `namespace` cannot be imported, and what to set so that it can. */
const namespaceNotGrantedMessage = (namespace: string, secretName: string) =>
  `the controller imports Secrets only from the namespaces it is given, and "${namespace}" (of Secret ` +
  `"${secretName}") is not one: add it to the Helm value ${secretNamespacesValue} (or, without the chart, ` +
  `to vault operator run ${secretNamespacesFlag} with a RoleBinding of the secret-reader ClusterRole there)`;

/** The Ready condition's reason and message for a refused import: what is wrong and who fixes it. */
function refusal(
  found: Extract<ReturnType<SecretLookup>, { refused: string }>,
  namespace: string,
  secretName: string,
  importer: string,
): [string, string] {
  switch (found.refused) {
    case 'namespace-not-granted':
      return ['SecretNamespaceNotGranted', namespaceNotGrantedMessage(namespace, secretName)];
    case 'not-importable':
      return [
        'SecretNotImportable',
        `Secret "${secretName}" does not exist or does not consent to being imported: whoever may read it ` +
          `adds the label ${secretImportLabel}: "${secretImportLabelValue}" and the annotation ` +
          `${secretImportForAnnotation}: "${importer}" (comma-separated VaultCredential names)`,
      ];
    case 'not-named':
      return [
        'ImportNotAllowed',
        `Secret "${secretName}" may be imported only by the VaultCredentials its annotation ` +
          `${secretImportForAnnotation} names (${found.importers.join(', ').slice(0, 512) || 'none'}), not by "${importer}"`,
      ];
  }
}

const owned = (obj: VaultCredentialObject) => obj.spec.source.external === undefined;

/**
 * On a credential made through the API: its consent to be managed by the VaultCredential of
 * the same name (`spec.source.external`), set through the API by whoever may write the
 * credential. Without it, whoever may create a VaultCredential in the namespace could grant
 * any ServiceAccount a lease on any credential of the tenant, relabel it (labels decide
 * policies) or revoke every lease of it, none of which Vault lets them do.
 */
export const externalConsentLabel = `${group}/external`;
export const externalConsentValue = 'true';
const consents = (metadata: Record<string, string> | undefined) =>
  metadata?.[externalConsentLabel] === externalConsentValue;

export function vaultMetadata(obj: VaultCredentialObject): Record<string, string> {
  return { ...(obj.spec.metadata ?? {}), ...(owned(obj) ? { [ownerLabel]: obj.metadata.uid } : {}) };
}

export function leaseDefaults(obj: VaultCredentialObject): { defaultTtl?: string; maxTtl?: string } {
  const access = obj.spec.access;
  return {
    ...(access?.defaultTtl ? { defaultTtl: access.defaultTtl } : {}),
    ...(access?.maxTtl ? { maxTtl: access.maxTtl } : {}),
  };
}

export function accessIdentities(obj: VaultCredentialObject): Identity[] {
  const access = obj.spec.access;
  return [
    ...(access?.serviceAccounts ?? []).map((sa) => serviceAccountIdentity(obj.metadata.namespace, sa)),
    ...(access?.agents ?? []).map((name): Identity => ({ type: 'agent', name })),
  ];
}

export function desiredPolicy(obj: VaultCredentialObject, credentialName: string): PolicyBody | undefined {
  if (accessIdentities(obj).length === 0) return undefined;
  const maxTtl = obj.spec.access?.maxTtl;
  return {
    description: `Managed by VaultCredential ${obj.metadata.namespace}/${obj.metadata.name}; do not edit.`,
    rules: [
      { credentials: [credentialName], actions: ['read-metadata', 'lease'], ...(maxTtl ? { maxTtl } : {}) },
    ],
  };
}

const parseIdentity = (text: string): Identity => {
  const colon = text.indexOf(':');
  return { type: text.slice(0, colon) as Identity['type'], name: text.slice(colon + 1) };
};

/** When a generated credential is due for rotation (ms since epoch), if it rotates. */
export function rotationDue(obj: VaultCredentialObject, credential: Credential): number | undefined {
  const interval = obj.spec.rotation?.interval;
  if (!interval || !obj.spec.source.generate) return undefined;
  const current = credential.versions.find((v) => v.version === credential.currentVersion);
  return current ? Date.parse(current.createdAt) + durationMs(interval) : undefined;
}

const samePolicy = (a: PolicyBody | undefined, b: PolicyBody) =>
  a !== undefined && sameJson(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b)));

export function createCredentialReconciler(
  deps: ReconcilerDeps & {
    secret: SecretLookup;
    /** How often a dynamic credential's upstream removals are checked; default 60 s. */
    dynamicPollMs?: number;
  },
) {
  const { client, vault, clock } = deps;
  const type = resourceTypes.vaultCredentials;

  async function writeStatus(
    obj: VaultCredentialObject,
    desired: VaultCredentialStatus,
    note?: [string, string],
  ) {
    if (sameJson(obj.status ?? {}, desired)) return;
    await client.mergePatch(
      type,
      obj.metadata.namespace,
      obj.metadata.name,
      { status: statusPatch(obj.status, desired) },
      { subresource: 'status' },
    );
    const ready = desired.conditions?.find((c) => c.type === 'Ready');
    const before = obj.status?.conditions?.find((c) => c.type === 'Ready');
    if (note) await deps.events.record(obj, 'Normal', note[0], note[1]);
    else if (ready && (ready.reason !== before?.reason || ready.status !== before?.status)) {
      await deps.events.record(
        obj,
        ready.status === 'True' ? 'Normal' : 'Warning',
        ready.reason,
        ready.message,
      );
    }
  }

  function notReady(
    obj: VaultCredentialObject,
    reason: string,
    message: string,
    phase: 'Pending' | 'Failed',
  ) {
    const status: VaultCredentialStatus = {
      ...obj.status,
      phase,
      observedGeneration: obj.metadata.generation,
      conditions: readyCondition(
        obj.status?.conditions,
        { status: 'False', reason, message },
        obj.metadata.generation,
        clock(),
      ),
    };
    return status;
  }

  /** An event when upstream removals start or stop failing (the condition says the rest). */
  async function recordRevocationsChange(obj: VaultCredentialObject, desired: VaultCredentialStatus) {
    const find = (list: VaultCredentialStatus['conditions']) =>
      list?.find((c) => c.type === revocationsConditionType);
    const [before, after] = [find(obj.status?.conditions), find(desired.conditions)];
    if (!after || after.status === (before?.status ?? 'False')) return;
    await deps.events.record(
      obj,
      after.status === 'True' ? 'Warning' : 'Normal',
      after.status === 'True' ? 'RevocationsFailing' : 'RevocationsRecovered',
      after.message,
    );
  }

  async function finalize(obj: VaultCredentialObject) {
    const tenant = deps.tenantOf(obj.metadata.namespace);
    const name = obj.metadata.name;
    const existing = await vault.getCredential(tenant, name);
    if (existing && owned(obj) && existing.metadata[ownerLabel] === obj.metadata.uid) {
      const { revoked } = await vault.deleteCredential(tenant, name);
      deps.logger.info({ tenant, credential: name, revoked }, 'deleted credential and revoked its leases');
    } else if (existing && !owned(obj) && consents(existing.metadata)) {
      await vault.revokeLeasesOf(tenant, name);
    }
    const identities = new Set([
      ...(obj.status?.identities ?? []),
      ...accessIdentities(obj).map(formatIdentity),
    ]);
    for (const id of identities) await vault.detachPolicy(tenant, parseIdentity(id), policyName(name));
    await vault.deletePolicy(tenant, policyName(name));
    await removeFinalizer(client, type, obj);
  }

  return async function reconcile(initial: VaultCredentialObject): Promise<ReconcileOutcome> {
    let obj = initial;
    const meta = obj.metadata;
    const hasFinalizer = meta.finalizers?.includes(finalizer) ?? false;
    if (meta.deletionTimestamp) {
      if (hasFinalizer) await finalize(obj);
      return {};
    }
    if (!hasFinalizer) obj = { ...obj, metadata: (await addFinalizer(client, type, obj)).metadata };

    const tenant = deps.tenantOf(meta.namespace);
    const name = meta.name;
    const source = obj.spec.source;
    let credential = await vault.getCredential(tenant, name);
    const revocations = credential?.revocations;
    let note: [string, string] | undefined;
    let secretResourceVersion = obj.status?.secretResourceVersion;

    if (credential && owned(obj) && credential.metadata[ownerLabel] !== obj.metadata.uid) {
      await writeStatus(
        obj,
        notReady(
          obj,
          'AlreadyExists',
          `credential "${name}" already exists in tenant "${tenant}" and is not managed by this VaultCredential; ` +
            'use spec.source.external to grant access to it, or delete it first',
          'Failed',
        ),
      );
      return {};
    }

    const secretRef = importedSecretRef(source);
    const dynamic = dynamicSpecOf(source);
    const mismatch = credential && owned(obj) ? sourceMismatch(source, credential) : undefined;
    if (mismatch) {
      await writeStatus(obj, notReady(obj, 'SourceChanged', mismatch, 'Failed'));
      return {};
    }
    if (secretRef) {
      const secretName = secretRef.name;
      const found = deps.secret(meta.namespace, secretName, secretRef.key, name);
      if ('refused' in found) {
        const [reason, message] = refusal(found, meta.namespace, secretName, name);
        await writeStatus(obj, notReady(obj, reason, message, 'Failed'));
        return {};
      }
      if ('missing' in found) {
        const what = `Secret "${secretName}" has no ${found.missing === 'empty' ? 'value under' : 'key'} "${secretRef.key}"`;
        await writeStatus(obj, notReady(obj, 'SecretNotFound', what, 'Pending'));
        return {};
      }
      if (!credential) {
        credential = await vault.createCredential(tenant, {
          name,
          type: obj.spec.type,
          metadata: vaultMetadata(obj),
          leases: leaseDefaults(obj),
          value: found.value,
          ...(dynamic ? { dynamic } : {}),
        });
        note = ['Created', `created credential "${name}" version 1 from Secret ${secretName}`];
      } else if (found.resourceVersion !== secretResourceVersion) {
        // Vault compares the value with the current version's: a Secret change elsewhere
        // (labels, another key) adds no version.
        const before = credential.currentVersion;
        credential = await vault.putVersionIfChanged(tenant, name, found.value);
        if (credential.currentVersion !== before) {
          note = ['NewVersion', `imported version ${credential.currentVersion} from Secret ${secretName}`];
        }
      }
      secretResourceVersion = found.resourceVersion;
    } else if (source.generate) {
      if (!credential) {
        credential = await vault.createCredential(tenant, {
          name,
          type: obj.spec.type,
          metadata: vaultMetadata(obj),
          leases: leaseDefaults(obj),
          generate: source.generate,
        });
        note = ['Created', `created credential "${name}" with a generated value`];
      } else {
        const due = rotationDue(obj, credential);
        if (due !== undefined && clock().getTime() >= due) {
          credential = await vault.rotate(tenant, name, source.generate);
          note = ['Rotated', `rotated credential "${name}" to version ${credential.currentVersion}`];
        }
      }
    } else if (credential && !consents(credential.metadata)) {
      // Checked before anything is written: no relabelling, no policy, no lease defaults.
      await writeStatus(
        obj,
        notReady(
          obj,
          'ExternalNotAllowed',
          `credential "${name}" in tenant "${tenant}" does not consent to being managed by a VaultCredential: ` +
            `whoever may update it through the API adds the label ${externalConsentLabel}=${externalConsentValue}`,
          'Failed',
        ),
      );
      return { requeueAfterMs: 60_000 };
    } else if (!credential) {
      await writeStatus(
        obj,
        notReady(
          obj,
          'CredentialNotFound',
          `credential "${name}" does not exist in tenant "${tenant}"; create it through the API (vault credentials create)`,
          'Pending',
        ),
      );
      return { requeueAfterMs: 60_000 };
    }

    // Labels and lease defaults follow the spec (for external credentials, only when the spec sets them).
    const wantMetadata = owned(obj)
      ? vaultMetadata(obj)
      : {
          ...credential.metadata,
          ...(obj.spec.metadata ?? {}),
          [externalConsentLabel]: externalConsentValue,
        };
    const wantLeases = leaseDefaults(obj);
    const leasesSet = Object.keys(wantLeases).length > 0 || owned(obj);
    const engineChange = dynamicUpdate(source, credential);
    if (
      !sameJson(credential.metadata, wantMetadata) ||
      (leasesSet && !sameJson(credential.leases ?? {}, wantLeases)) ||
      engineChange
    ) {
      credential = await vault.updateCredential(tenant, name, {
        metadata: wantMetadata,
        leases: leasesSet ? wantLeases : (credential.leases ?? {}),
        ...engineChange,
      });
    }

    // Access: one policy per credential, attached to exactly the identities the spec names.
    const policy = desiredPolicy(obj, name);
    const wanted = accessIdentities(obj);
    const wantedIds = new Set(wanted.map(formatIdentity));
    if (policy) {
      if (!samePolicy(await vault.getPolicy(tenant, policyName(name)), policy)) {
        await vault.putPolicy(tenant, policyName(name), policy);
      }
      for (const who of wanted) await vault.attachPolicy(tenant, who, policyName(name));
    }
    for (const id of obj.status?.identities ?? []) {
      if (!wantedIds.has(id)) await vault.detachPolicy(tenant, parseIdentity(id), policyName(name));
    }
    if (!policy && obj.status?.policy) await vault.deletePolicy(tenant, policyName(name));

    const current = credential.versions.find((v) => v.version === credential?.currentVersion);
    // The retry state comes with the GET that started this reconcile (a write answers without it).
    const retries = { ...credential, revocations: revocations ?? credential.revocations };
    const status: VaultCredentialStatus = {
      phase: 'Ready',
      version: credential.currentVersion,
      ...(current ? { fingerprint: current.fingerprint, rotatedAt: current.createdAt } : {}),
      ...(secretRef ? { secretResourceVersion } : {}),
      ...(policy ? { policy: policyName(name), identities: [...wantedIds].sort() } : {}),
      observedGeneration: obj.metadata.generation,
      conditions: readyCondition(
        revocationsCondition(obj.status?.conditions, retries, obj.metadata.generation, clock()),
        {
          status: 'True',
          reason: 'Synced',
          message: `credential "${name}" is at version ${credential.currentVersion} in tenant "${tenant}"`,
        },
        obj.metadata.generation,
        clock(),
      ),
    };
    await writeStatus(obj, status, note);
    await recordRevocationsChange(obj, status);
    const due = rotationDue(obj, credential);
    const recheck = revocationsRecheckMs(retries, clock(), deps.dynamicPollMs ?? 60_000);
    const waits = [due === undefined ? undefined : Math.max(0, due - clock().getTime()), recheck].filter(
      (ms) => ms !== undefined,
    );
    return waits.length === 0 ? {} : { requeueAfterMs: Math.min(...waits) };
  };
}
