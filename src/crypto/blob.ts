/**
 * The one ciphertext format: AES-256-GCM with a 96-bit random nonce and a 128-bit tag, in a
 * self-describing, versioned blob that is safe to embed in JSON:
 *
 *   vault:v1:<base64url of the binary layout below>
 *
 *   offset      size  field
 *   0           1     format version (1)
 *   1           1     key id length L (1..255)
 *   2           L     key id, printable ASCII ("root:3fa4...", "tenant:acme", "data")
 *   2+L         4     key version, unsigned 32-bit big-endian
 *   6+L         12    nonce
 *   18+L        n     ciphertext
 *   18+L+n      16    tag
 *
 * The GCM additional data is the whole header (bytes 0..18+L, self-delimiting because the key
 * id is length-prefixed) followed by the caller's AAD, so editing the key id or version, or
 * moving the blob to a record with another AAD, fails authentication.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CryptoError } from './errors.js';

export const KEY_BYTES = 32;
const FORMAT_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const PREFIX = `vault:v${FORMAT_VERSION}:`;
const MAX_KEY_ID_BYTES = 255;
const keyIdPattern = /^[\x21-\x7e]+$/;
const base64urlPattern = /^[A-Za-z0-9_-]+$/;

export interface KeyRef {
  keyId: string;
  keyVersion: number;
}

export interface BlobHeader extends KeyRef {
  formatVersion: number;
}

interface ParsedBlob extends BlobHeader {
  /** Bytes 0..18+L: everything authenticated as additional data besides the caller's AAD. */
  header: Buffer;
  nonce: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/** Encrypts `plaintext` under `key`, binding it to `aad` and to the key reference in the header. */
export function seal(key: Buffer, plaintext: Buffer, aad: string, ref: KeyRef): string {
  checkKey(key);
  checkKeyRef(ref);
  const keyId = Buffer.from(ref.keyId, 'ascii');
  const nonce = randomBytes(NONCE_BYTES);
  const header = Buffer.alloc(2 + keyId.length + 4 + NONCE_BYTES);
  header.writeUInt8(FORMAT_VERSION, 0);
  header.writeUInt8(keyId.length, 1);
  keyId.copy(header, 2);
  header.writeUInt32BE(ref.keyVersion, 2 + keyId.length);
  nonce.copy(header, 6 + keyId.length);

  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(additionalData(header, aad));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const tag = cipher.getAuthTag();
  return PREFIX + Buffer.concat([header, ciphertext, tag]).toString('base64url');
}

/** Decrypts a blob made by `seal` with the same key and AAD; throws CryptoError otherwise. */
export function open(key: Buffer, blob: string, aad: string): Buffer {
  checkKey(key);
  const parsed = parse(blob);
  const decipher = createDecipheriv('aes-256-gcm', key, parsed.nonce, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(parsed.tag);
  decipher.setAAD(additionalData(parsed.header, aad));
  const plaintext = decipher.update(parsed.ciphertext);
  try {
    decipher.final();
  } catch {
    plaintext.fill(0);
    // The cause (OpenSSL's "unable to authenticate data") adds nothing and is left out.
    throw new CryptoError(
      'decrypt_failed',
      `decryption failed for a blob under ${describe(parsed)}: wrong key, or the blob was tampered with or belongs to another record`,
    );
  }
  return plaintext;
}

/** Reads the header only, to choose the key that opens the blob. Nothing is authenticated yet. */
export function parseBlob(blob: string): BlobHeader {
  const { formatVersion, keyId, keyVersion } = parse(blob);
  return { formatVersion, keyId, keyVersion };
}

export function isBlob(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(PREFIX);
}

function parse(blob: string): ParsedBlob {
  if (typeof blob !== 'string' || !blob.startsWith(PREFIX)) {
    throw malformed(`it does not start with "${PREFIX}"`);
  }
  const encoded = blob.slice(PREFIX.length);
  if (!base64urlPattern.test(encoded)) throw malformed('its body is not base64url');
  const bytes = Buffer.from(encoded, 'base64url');
  // Buffer's decoder ignores stray trailing bits; a canonical encoding has a single spelling.
  if (bytes.toString('base64url') !== encoded) throw malformed('its body is not canonical base64url');
  if (bytes.length < 2) throw malformed('it is truncated');
  const formatVersion = bytes.readUInt8(0);
  if (formatVersion !== FORMAT_VERSION) {
    throw malformed(`its format version ${formatVersion} is not ${FORMAT_VERSION}`);
  }
  const keyIdLength = bytes.readUInt8(1);
  const headerLength = 2 + keyIdLength + 4 + NONCE_BYTES;
  if (keyIdLength === 0 || bytes.length < headerLength + TAG_BYTES) throw malformed('it is truncated');
  const keyId = bytes.subarray(2, 2 + keyIdLength).toString('latin1');
  if (!keyIdPattern.test(keyId)) throw malformed('its key id is not printable ASCII');
  return {
    formatVersion,
    keyId,
    keyVersion: bytes.readUInt32BE(2 + keyIdLength),
    header: bytes.subarray(0, headerLength),
    nonce: bytes.subarray(headerLength - NONCE_BYTES, headerLength),
    ciphertext: bytes.subarray(headerLength, bytes.length - TAG_BYTES),
    tag: bytes.subarray(bytes.length - TAG_BYTES),
  };
}

function additionalData(header: Buffer, aad: string): Buffer {
  return Buffer.concat([header, Buffer.from(aad, 'utf8')]);
}

function checkKey(key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) {
    throw new CryptoError('bad_key', `an AES-256-GCM key must be ${KEY_BYTES} bytes`);
  }
}

function checkKeyRef(ref: KeyRef): void {
  if (!keyIdPattern.test(ref.keyId) || ref.keyId.length > MAX_KEY_ID_BYTES) {
    throw new CryptoError('bad_key', `key id must be 1 to ${MAX_KEY_ID_BYTES} printable ASCII characters`);
  }
  if (!Number.isInteger(ref.keyVersion) || ref.keyVersion < 0 || ref.keyVersion > 0xffffffff) {
    throw new CryptoError('bad_key', 'key version must be an unsigned 32-bit integer');
  }
}

function malformed(why: string): CryptoError {
  return new CryptoError('decrypt_failed', `not a valid encrypted blob: ${why}`);
}

function describe(ref: KeyRef): string {
  return `key ${ref.keyId} version ${ref.keyVersion}`;
}
