import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { open, parseBlob, seal } from './blob.js';
import { CryptoError } from './errors.js';

const key = randomBytes(32);
const ref = { keyId: 'tenant:acme', keyVersion: 7 };
const canary = Buffer.from('canary-sk_live_5f2a9c0e7b1d4436');

function failure(fn: () => unknown): CryptoError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CryptoError);
    return err as CryptoError;
  }
  throw new Error('expected a CryptoError, but nothing was thrown');
}

/** Every way the secret could leak into a message. */
function expectNoSecrets(message: string): void {
  for (const secret of [canary, key]) {
    for (const encoding of ['utf8', 'hex', 'base64', 'base64url'] as const) {
      expect(message).not.toContain(secret.toString(encoding));
    }
  }
}

const body = (blob: string) => Buffer.from(blob.slice('vault:v1:'.length), 'base64url');
const rebuild = (bytes: Buffer) => `vault:v1:${bytes.toString('base64url')}`;

describe('blob', () => {
  it('round-trips values of any size, and the header names the key', () => {
    for (const size of [0, 1, 15, 16, 17, 1024, 100_000]) {
      const plaintext = randomBytes(size);
      const blob = seal(key, plaintext, 'aad', ref);
      expect(blob).toMatch(/^vault:v1:[A-Za-z0-9_-]+$/);
      expect(open(key, blob, 'aad').equals(plaintext)).toBe(true);
      expect(parseBlob(blob)).toEqual({ formatVersion: 1, keyId: 'tenant:acme', keyVersion: 7 });
    }
  });

  it('is safe inside JSON and survives a round trip through it', () => {
    const blob = seal(key, canary, 'aad', { keyId: 'root:0123abcd', keyVersion: 0xffffffff });
    const copy = JSON.parse(JSON.stringify({ blob })).blob as string;
    expect(open(key, copy, 'aad').equals(canary)).toBe(true);
    expect(parseBlob(copy).keyVersion).toBe(0xffffffff);
  });

  it('fails when any single byte of header, nonce, ciphertext or tag changes', () => {
    const blob = seal(key, canary, 'aad', ref);
    const bytes = body(blob);
    // 2 + 11 (key id) + 4 (version) + 12 (nonce) + ciphertext + 16 (tag)
    expect(bytes.length).toBe(2 + 11 + 4 + 12 + canary.length + 16);
    for (let i = 0; i < bytes.length; i++) {
      for (const mask of [0x01, 0x80]) {
        const tampered = Buffer.from(bytes);
        tampered[i] = tampered[i]! ^ mask;
        const err = failure(() => open(key, rebuild(tampered), 'aad'));
        expect(err.reason).toBe('decrypt_failed');
        expectNoSecrets(err.message);
      }
    }
  });

  it('fails when the key id or version in the header is rewritten to another valid value', () => {
    const blob = seal(key, canary, 'aad', ref);
    const bytes = body(blob);
    const otherId = Buffer.from(bytes);
    otherId.write('tenant:evil', 2, 'ascii');
    expect(parseBlob(rebuild(otherId)).keyId).toBe('tenant:evil');
    expect(failure(() => open(key, rebuild(otherId), 'aad')).reason).toBe('decrypt_failed');
    const otherVersion = Buffer.from(bytes);
    otherVersion.writeUInt32BE(8, 2 + 11);
    expect(parseBlob(rebuild(otherVersion)).keyVersion).toBe(8);
    expect(failure(() => open(key, rebuild(otherVersion), 'aad')).reason).toBe('decrypt_failed');
  });

  it('fails when truncated, extended, or when the tag is shortened', () => {
    const bytes = body(seal(key, canary, 'aad', ref));
    for (const changed of [
      bytes.subarray(0, bytes.length - 1),
      bytes.subarray(0, bytes.length - 4),
      bytes.subarray(0, 2 + 11 + 4 + 12 + 15),
      bytes.subarray(0, 5),
      Buffer.concat([bytes, Buffer.from([0])]),
    ]) {
      expect(failure(() => open(key, rebuild(changed), 'aad')).reason).toBe('decrypt_failed');
    }
  });

  it('fails with the wrong AAD or the wrong key, without leaking either', () => {
    const blob = seal(key, canary, 'vault:value:["acme","db",1]', ref);
    for (const aad of [
      'vault:value:["acme","db",2]',
      'vault:value:["acme","dc",1]',
      '',
      'vault:value:["acme","db",1] ',
    ]) {
      const err = failure(() => open(key, blob, aad));
      expect(err.reason).toBe('decrypt_failed');
      expect(err.code).toBe('internal');
      expectNoSecrets(err.message);
    }
    const err = failure(() => open(randomBytes(32), blob, 'vault:value:["acme","db",1]'));
    expect(err.message).toContain('tenant:acme version 7');
    expectNoSecrets(err.message);
  });

  it('rejects malformed blobs with a clear message', () => {
    const blob = seal(key, canary, 'aad', ref);
    const cases: Array<[string, RegExp]> = [
      ['', /does not start with "vault:v1:"/],
      ['vault:v2:AAAA', /does not start with "vault:v1:"/],
      [blob.replace('vault:v1:', 'vault:v1: '), /not base64url/],
      [`${blob}=`, /not base64url/],
      [`${blob.slice(0, -1)}+`, /not base64url/],
      ['vault:v1:AQ', /truncated/],
      [rebuild(Buffer.from([2, 1, 65, 0, 0, 0, 1, ...randomBytes(28)])), /format version 2/],
      [rebuild(Buffer.from([1, 1, 0x0a, 0, 0, 0, 1, ...randomBytes(28)])), /key id/],
      [rebuild(Buffer.from([1, 0, 0, 0, 0, 1, ...randomBytes(28)])), /truncated/],
    ];
    for (const [input, message] of cases) {
      const err = failure(() => open(key, input, 'aad'));
      expect(err.reason).toBe('decrypt_failed');
      expect(err.message).toMatch(message);
      expect(() => parseBlob(input)).toThrow(CryptoError);
    }
    // A non-canonical spelling of the same bytes (stray low bits in the last character).
    const encoded = blob.slice('vault:v1:'.length);
    if (encoded.length % 4 !== 0) {
      const last = encoded.at(-1)!;
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const sibling = alphabet[alphabet.indexOf(last) ^ 1]!;
      expect(failure(() => open(key, `vault:v1:${encoded.slice(0, -1)}${sibling}`, 'aad')).message).toMatch(
        /canonical|tampered/,
      );
    }
  });

  it('uses a fresh random nonce for every seal', () => {
    const nonces = new Set<string>();
    const blobs = new Set<string>();
    const count = 20_000;
    for (let i = 0; i < count; i++) {
      const blob = seal(key, canary, 'aad', ref);
      blobs.add(blob);
      nonces.add(
        body(blob)
          .subarray(2 + 11 + 4, 2 + 11 + 4 + 12)
          .toString('hex'),
      );
    }
    expect(nonces.size).toBe(count);
    expect(blobs.size).toBe(count);
  });

  it('refuses keys that are not 32 bytes and key references it cannot encode', () => {
    for (const bad of [randomBytes(16), randomBytes(31), randomBytes(33), Buffer.alloc(0)]) {
      expect(failure(() => seal(bad, canary, 'aad', ref)).reason).toBe('bad_key');
      expect(failure(() => open(bad, seal(key, canary, 'aad', ref), 'aad')).reason).toBe('bad_key');
    }
    for (const badRef of [
      { keyId: '', keyVersion: 1 },
      { keyId: 'tenant:ünïcode', keyVersion: 1 },
      { keyId: 'has space', keyVersion: 1 },
      { keyId: 'x'.repeat(256), keyVersion: 1 },
      { keyId: 'ok', keyVersion: -1 },
      { keyId: 'ok', keyVersion: 2 ** 32 },
      { keyId: 'ok', keyVersion: 1.5 },
    ]) {
      expect(failure(() => seal(key, canary, 'aad', badRef)).reason).toBe('bad_key');
    }
    expect(parseBlob(seal(key, canary, 'aad', { keyId: 'x'.repeat(255), keyVersion: 0 })).keyId).toHaveLength(
      255,
    );
  });
});
