/**
 * The root of the key hierarchy. Everything the keyring needs from a root key is wrap and
 * unwrap of tenant keys, so a KMS plug-in implements the same small interface as the local
 * key: `wrap` returns an opaque string the keyring stores, `unwrap` gets it back.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { link, mkdir, open as openFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { KEY_BYTES, open, parseBlob, seal } from './blob.js';
import { CryptoError } from './errors.js';

export interface RootKeyProvider {
  /** Stable, non-secret id stored next to everything this root wraps ("root:3fa4c1d2e5b6a798"). */
  readonly id: string;
  wrap(plaintext: Buffer, aad: string): Promise<string>;
  unwrap(blob: string, aad: string): Promise<Buffer>;
}

/** A root key held in this process's memory. */
export function localRootKey(key: Buffer): RootKeyProvider {
  if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) {
    throw new CryptoError('bad_root_key', `a root key must be ${KEY_BYTES} bytes`);
  }
  const material = Buffer.from(key);
  const id = rootKeyId(material);
  const ref = { keyId: id, keyVersion: 1 };
  return {
    id,
    async wrap(plaintext, aad) {
      return seal(material, plaintext, aad, ref);
    },
    async unwrap(blob, aad) {
      const header = parseBlob(blob);
      if (header.keyId !== id) {
        throw new CryptoError(
          'root_key_unavailable',
          `this blob was wrapped by ${header.keyId}, not by ${id}`,
        );
      }
      return open(material, blob, aad);
    },
  };
}

/**
 * The id of a root key: a keyed hash, so it identifies the key without revealing anything
 * about it (64 bits is plenty to tell a handful of root keys apart).
 */
export function rootKeyId(key: Buffer): string {
  const digest = createHmac('sha256', key).update('vault-root-key-id').digest();
  return `root:${digest.subarray(0, 8).toString('hex')}`;
}

/**
 * Reads a root key file: 32 raw bytes, 64 hex characters, or base64 of 32 bytes. The file must
 * be a regular file that only its owner can read or write (mode 0600 or 0400).
 */
export async function rootKeyFromFile(path: string): Promise<RootKeyProvider> {
  let handle: Awaited<ReturnType<typeof openFile>>;
  try {
    handle = await openFile(path, 'r');
  } catch (err) {
    throw new CryptoError('bad_root_key', `cannot open root key file ${path}: ${fsReason(err)}`);
  }
  let content: Buffer | undefined;
  try {
    // Checked on the open descriptor, so the file read is the file whose mode was checked.
    const stats = await handle.stat();
    if (!stats.isFile()) throw new CryptoError('bad_root_key', `root key file ${path} is not a regular file`);
    const mode = stats.mode & 0o777;
    if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
      throw new CryptoError(
        'bad_root_key',
        `root key file ${path} has mode ${mode.toString(8).padStart(4, '0')}, so other users can read or change it; ` +
          `restrict it with: chmod 600 ${path}`,
      );
    }
    if (stats.size > 4096) throw lengthError(`root key file ${path}`, stats.size);
    content = await handle.readFile();
    return localRootKey(decodeRootKey(content, `root key file ${path}`, true));
  } finally {
    content?.fill(0);
    await handle.close();
  }
}

/** Reads a root key from an environment variable's value: 64 hex characters or base64 of 32 bytes. */
export function rootKeyFromEnv(value: string, name = 'VAULT_ROOT_KEY'): RootKeyProvider {
  const content = Buffer.from(value ?? '', 'utf8');
  try {
    return localRootKey(decodeRootKey(content, `root key in ${name}`, false));
  } finally {
    content.fill(0);
  }
}

/**
 * Creates a new random root key file (64 hex characters and a newline, mode 0600) and returns
 * its provider. The key is written to a temporary file in the same directory first and then
 * hard-linked into place, which is atomic and fails if `path` exists: an existing root key is
 * never overwritten, and a crash never leaves a half-written key at `path`.
 */
export async function generateRootKeyFile(path: string): Promise<RootKeyProvider> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const key = randomBytes(KEY_BYTES);
  const text = Buffer.from(`${key.toString('hex')}\n`, 'utf8');
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await openFile(temp, 'wx', 0o600);
    try {
      await handle.chmod(0o600);
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(temp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new CryptoError(
          'bad_root_key',
          `root key file ${path} already exists; refusing to overwrite it`,
        );
      }
      throw new CryptoError('bad_root_key', `cannot create root key file ${path}: ${fsReason(err)}`);
    }
    await syncDirectory(dirname(path));
    return localRootKey(key);
  } finally {
    text.fill(0);
    key.fill(0);
    await unlink(temp).catch(() => undefined);
  }
}

/** Decodes 32 raw bytes (files only), 64 hex characters, or base64/base64url of 32 bytes. */
function decodeRootKey(content: Buffer, what: string, allowRaw: boolean): Buffer {
  if (allowRaw && content.length === KEY_BYTES) return Buffer.from(content);
  const text = content.toString('utf8').trim();
  if (text.length === 0) throw new CryptoError('bad_root_key', `${what} is empty`);
  if (/^[0-9a-fA-F]+$/.test(text)) {
    if (text.length === KEY_BYTES * 2) return Buffer.from(text, 'hex');
    if (text.length % 2 === 0) throw lengthError(what, text.length / 2, 'hex');
  }
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
    const decoded = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
    if (decoded.length === KEY_BYTES) return decoded;
    decoded.fill(0);
    throw lengthError(what, decoded.length, 'base64');
  }
  throw new CryptoError(
    'bad_root_key',
    `${what} is not a 32-byte key: use ${allowRaw ? '32 raw bytes, ' : ''}64 hex characters or base64 of 32 bytes ` +
      '(for example the output of `openssl rand -hex 32`)',
  );
}

function lengthError(what: string, bytes: number, encoding?: string): CryptoError {
  const holds = encoding ? `decodes (as ${encoding}) to ${bytes} bytes` : `holds ${bytes} bytes`;
  return new CryptoError(
    'bad_root_key',
    `${what} ${holds}, but a root key is exactly ${KEY_BYTES} bytes: ` +
      `use ${KEY_BYTES * 2} hex characters or base64 of ${KEY_BYTES} bytes (for example \`openssl rand -hex 32\`)`,
  );
}

function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file (generate one with `openssl rand -hex 32`, then chmod 600 it)';
  if (code === 'EACCES') return 'permission denied';
  return code ?? 'unknown error';
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await openFile(dir, 'r').catch(() => undefined);
  if (!handle) return;
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the link itself is already durable there.
  } finally {
    await handle.close();
  }
}
