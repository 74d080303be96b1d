import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/**
 * A PEM bundle of CA certificates to trust (the Vault API's CA for the agent and the webhook).
 * Checked once at start, so a wrong file is one clear line instead of a TLS error on every
 * request later.
 */

const certificateBlock = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The certificates of `text`, re-joined, or what is wrong with it; `source` names it in the message. */
export function parseCaBundle(text: string, source: string): { pem: string } | { error: string } {
  const blocks = text.match(certificateBlock) ?? [];
  if (blocks.length === 0)
    return { error: `${source} is not a PEM CA bundle: it has no "-----BEGIN CERTIFICATE-----" block` };
  for (const [index, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      return {
        error: `${source}: certificate ${index + 1} of ${blocks.length} does not parse: ${(err as Error).message}`,
      };
    }
  }
  return { pem: `${blocks.join('\n')}\n` };
}

/** Reads and checks a PEM CA bundle file. */
export async function readCaBundle(path: string): Promise<{ pem: string } | { error: string }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      error: `cannot read the CA file ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
    };
  }
  return parseCaBundle(text, `the CA file ${path}`);
}
