/**
 * Signed checkpoints: "tenant T's chain had `seq` records ending in `hash` at `time`",
 * signed with the tenant's Ed25519 audit key. Pure functions, usable by the server, the SDK
 * and the CLI (node:crypto only).
 */
import { createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import type { AuditCheckpoint } from '../contract/audit.js';
import { publicKeyId } from './audit-keys.js';

/** Exactly the bytes signed: a domain tag, then the fields in a fixed order. */
export const checkpointMessage = (c: Pick<AuditCheckpoint, 'tenant' | 'seq' | 'hash' | 'time'>) =>
  Buffer.from(`vault-audit-checkpoint:v1\n${JSON.stringify([c.tenant, c.seq, c.hash, c.time])}`, 'utf8');

export function signCheckpoint(
  key: { signing: KeyObject; keyId: string },
  body: Pick<AuditCheckpoint, 'tenant' | 'seq' | 'hash' | 'time'>,
): AuditCheckpoint {
  const signature = sign(null, checkpointMessage(body), key.signing).toString('base64');
  return {
    tenant: body.tenant,
    seq: body.seq,
    hash: body.hash,
    time: body.time,
    keyId: key.keyId,
    signature,
  };
}

/** Whether `checkpoint` was signed by the holder of `publicKey` (a KeyObject or SPKI PEM). */
export function checkpointSignedBy(checkpoint: AuditCheckpoint, publicKey: KeyObject | string): boolean {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  if (publicKeyId(key) !== checkpoint.keyId) return false;
  try {
    return verify(null, checkpointMessage(checkpoint), key, Buffer.from(checkpoint.signature, 'base64'));
  } catch {
    return false;
  }
}
