import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CryptoError } from './errors.js';
import { generateRootKeyFile, localRootKey, rootKeyFromEnv, rootKeyFromFile, rootKeyId } from './root-key.js';

const dir = mkdtempSync(join(tmpdir(), 'vault-root-key-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const key = randomBytes(32);
let fileCount = 0;

function keyFile(content: string | Buffer, mode = 0o600): string {
  const path = join(dir, `key-${++fileCount}`);
  writeFileSync(path, content, { mode });
  chmodSync(path, mode);
  return path;
}

async function rejection(promise: Promise<unknown> | (() => unknown)): Promise<CryptoError> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (err) {
    expect(err).toBeInstanceOf(CryptoError);
    return err as CryptoError;
  }
  throw new Error('expected a CryptoError, but nothing was thrown');
}

function expectNoKey(message: string, secret: Buffer = key): void {
  for (const encoding of ['hex', 'base64', 'base64url', 'latin1'] as const) {
    expect(message).not.toContain(secret.toString(encoding));
  }
}

describe('localRootKey', () => {
  it('wraps and unwraps, bound to the AAD', async () => {
    const root = localRootKey(key);
    const tenantKey = randomBytes(32);
    const wrapped = await root.wrap(tenantKey, 'vault:tenant-key:acme:v1');
    expect(wrapped.startsWith('vault:v1:')).toBe(true);
    expect((await root.unwrap(wrapped, 'vault:tenant-key:acme:v1')).equals(tenantKey)).toBe(true);
    expect((await rejection(root.unwrap(wrapped, 'vault:tenant-key:acme:v2'))).reason).toBe('decrypt_failed');
    expect((await rejection(root.unwrap(wrapped, 'vault:tenant-key:other:v1'))).reason).toBe(
      'decrypt_failed',
    );
  });

  it('has a stable id that reveals nothing of the key', () => {
    const root = localRootKey(key);
    expect(root.id).toMatch(/^root:[0-9a-f]{16}$/);
    expect(root.id).toBe(rootKeyId(key));
    expect(localRootKey(Buffer.from(key)).id).toBe(root.id);
    expect(localRootKey(randomBytes(32)).id).not.toBe(root.id);
    expect(key.toString('hex')).not.toContain(root.id.slice('root:'.length));
    expectNoKey(JSON.stringify(root));
  });

  it('keeps its own copy of the key and names the right root when another one wrapped a blob', async () => {
    const material = Buffer.from(key);
    const root = localRootKey(material);
    material.fill(0);
    const other = localRootKey(randomBytes(32));
    const wrapped = await root.wrap(Buffer.from('x'), 'aad');
    expect((await root.unwrap(wrapped, 'aad')).toString()).toBe('x');
    const err = await rejection(other.unwrap(wrapped, 'aad'));
    expect(err.reason).toBe('root_key_unavailable');
    expect(err.message).toContain(root.id);
  });

  it('refuses keys that are not 32 bytes', async () => {
    for (const bad of [randomBytes(16), randomBytes(64), Buffer.alloc(0)]) {
      expect((await rejection(() => localRootKey(bad))).message).toMatch(/32 bytes/);
    }
  });
});

describe('rootKeyFromFile', () => {
  it('reads 64 hex characters, base64, base64url and 32 raw bytes', async () => {
    const id = rootKeyId(key);
    for (const content of [
      key.toString('hex'),
      `${key.toString('hex').toUpperCase()}\n`,
      `${key.toString('base64')}\n`,
      key.toString('base64url'),
      key,
    ]) {
      expect((await rootKeyFromFile(keyFile(content))).id).toBe(id);
    }
    expect((await rootKeyFromFile(keyFile(key.toString('hex'), 0o400))).id).toBe(id);
  });

  it('rejects a file other users can read, saying how to fix it with chmod 600', async () => {
    for (const mode of [0o644, 0o640, 0o604, 0o660, 0o666]) {
      const path = keyFile(key.toString('hex'), mode);
      const err = await rejection(rootKeyFromFile(path));
      expect(err.reason).toBe('bad_root_key');
      expect(err.code).toBe('bad_request');
      expect(err.message).toContain(`chmod 600 ${path}`);
      expect(err.message).toContain(`mode 0${mode.toString(8)}`);
      expectNoKey(err.message);
    }
  });

  it('explains wrong lengths and encodings without echoing the content', async () => {
    const short = randomBytes(31);
    const long = randomBytes(48);
    const cases: Array<[string | Buffer, RegExp, Buffer]> = [
      [short.toString('hex'), /decodes \(as hex\) to 31 bytes.*exactly 32 bytes/, short],
      [long.toString('hex'), /decodes \(as hex\) to 48 bytes/, long],
      [short.toString('base64'), /decodes \(as base64\) to 31 bytes/, short],
      [long, /holds 48 bytes|decodes|not a 32-byte key/, long],
      ['not a key at all!', /not a 32-byte key/, Buffer.from('not a key at all!')],
      ['\n', /is empty/, Buffer.alloc(0)],
    ];
    for (const [content, message, secret] of cases) {
      const err = await rejection(rootKeyFromFile(keyFile(content)));
      expect(err.reason).toBe('bad_root_key');
      expect(err.message).toMatch(message);
      if (secret.length > 0) expectNoKey(err.message, secret);
    }
  });

  it('says what is wrong with a missing file or a directory', async () => {
    const missing = join(dir, 'missing');
    expect((await rejection(rootKeyFromFile(missing))).message).toMatch(
      /cannot open root key file .*no such file/,
    );
    const sub = join(dir, 'a-directory');
    mkdirSync(sub, { mode: 0o700 });
    expect((await rejection(rootKeyFromFile(sub))).message).toMatch(/not a regular file/);
  });
});

describe('rootKeyFromEnv', () => {
  it('reads hex and base64', () => {
    expect(rootKeyFromEnv(key.toString('hex')).id).toBe(rootKeyId(key));
    expect(rootKeyFromEnv(` ${key.toString('base64')}\n`).id).toBe(rootKeyId(key));
  });

  it('rejects anything else, naming the variable but not the value', async () => {
    const short = randomBytes(24);
    for (const value of [
      short.toString('hex'),
      short.toString('base64'),
      'hunter2-hunter2',
      '',
      key.toString('latin1'),
    ]) {
      const err = await rejection(() => rootKeyFromEnv(value, 'MY_ROOT_KEY'));
      expect(err.reason).toBe('bad_root_key');
      expect(err.message).toContain('MY_ROOT_KEY');
      if (value.trim()) expect(err.message).not.toContain(value.trim());
      expectNoKey(err.message, short);
    }
  });
});

describe('generateRootKeyFile', () => {
  it('creates a 0600 file of 64 hex characters that rootKeyFromFile reads back', async () => {
    const path = join(dir, 'generated', 'nested', 'root.key');
    const root = await generateRootKeyFile(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const content = readFileSync(path, 'utf8');
    expect(content).toMatch(/^[0-9a-f]{64}\n$/);
    expect((await rootKeyFromFile(path)).id).toBe(root.id);
    expect(root.id).toBe(rootKeyId(Buffer.from(content.trim(), 'hex')));
    expect(readdirSync(join(dir, 'generated', 'nested'))).toEqual(['root.key']);
  });

  it('refuses to overwrite an existing file and leaves it unchanged', async () => {
    const path = join(dir, 'existing.key');
    const first = await generateRootKeyFile(path);
    const before = readFileSync(path);
    const err = await rejection(generateRootKeyFile(path));
    expect(err.message).toMatch(/already exists; refusing to overwrite/);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect((await rootKeyFromFile(path)).id).toBe(first.id);
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('generates a different key every time', async () => {
    const a = await generateRootKeyFile(join(dir, 'a.key'));
    const b = await generateRootKeyFile(join(dir, 'b.key'));
    expect(a.id).not.toBe(b.id);
  });
});
