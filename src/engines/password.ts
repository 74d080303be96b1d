import { createHash, createHmac, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/** A password for an upstream account: 32 characters from 192 random bits, URL-safe. */
export const randomPassword = (): string => randomBytes(24).toString('base64url');

/** PostgreSQL's own default (scram_iterations), which every SCRAM client accepts. */
export const defaultScramIterations = 4096;

/**
 * A SCRAM-SHA-256 verifier (RFC 7677, PostgreSQL's stored format), computed here so the
 * plaintext password never reaches the database server, its statement log or its stats.
 * PBKDF2 runs on libuv's thread pool, so issuing many leases does not stall the event loop.
 */
export async function scramVerifier(password: string, iterations = defaultScramIterations): Promise<string> {
  const salt = randomBytes(16);
  const salted = await pbkdf2Async(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
