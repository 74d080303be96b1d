/**
 * Checks an audit checkpoint's Ed25519 signature with WebCrypto (in Node 20+ and browsers),
 * so the SDK keeps no dependency beyond the platform.
 */
import type { AuditCheckpoint } from './types.js';

const encoder = new TextEncoder();

/** The exact bytes the server signs (src/core/audit-checkpoints.ts). */
const message = (c: AuditCheckpoint) =>
  encoder.encode(`vault-audit-checkpoint:v1\n${JSON.stringify([c.tenant, c.seq, c.hash, c.time])}`);

const fromBase64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
/** A copy as a plain ArrayBuffer, the one BufferSource every WebCrypto typing accepts. */
const bytes = (view: Uint8Array): ArrayBuffer => view.slice().buffer as ArrayBuffer;

function spkiFromPem(pem: string): Uint8Array {
  const body = pem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, '').replace(/\s+/g, '');
  return fromBase64(body);
}

/** Whether `checkpoint` was signed by the key whose SPKI PEM is `publicKeyPem`. */
export async function checkpointSignedBy(
  checkpoint: AuditCheckpoint,
  publicKeyPem: string,
): Promise<boolean> {
  try {
    const spki = spkiFromPem(publicKeyPem);
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes(spki.slice(-32))));
    const keyId = [...digest.slice(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('');
    if (keyId !== checkpoint.keyId) return false;
    const key = await crypto.subtle.importKey('spki', bytes(spki), { name: 'Ed25519' }, false, ['verify']);
    return await crypto.subtle.verify(
      { name: 'Ed25519' },
      key,
      bytes(fromBase64(checkpoint.signature)),
      bytes(message(checkpoint)),
    );
  } catch {
    return false;
  }
}
