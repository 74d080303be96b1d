import { randomBytes, randomInt } from 'node:crypto';
import type { GenerateSpec } from '../contract/credentials.js';

const alphabets = {
  alphanumeric: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789',
  hex: '0123456789abcdef',
  printable: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&()*+,-./:;<=>?@[]^_{|}~',
} as const;

/** A uniformly random value (rejection-free: randomInt is unbiased). */
export function generateValue(spec: Partial<GenerateSpec> = {}): string {
  const length = spec.length ?? 32;
  const alphabet = spec.alphabet ?? 'alphanumeric';
  if (alphabet === 'base64url')
    return randomBytes(Math.ceil((length * 3) / 4))
      .toString('base64url')
      .slice(0, length);
  const chars = alphabets[alphabet];
  let out = '';
  for (let i = 0; i < length; i++) out += chars[randomInt(chars.length)];
  return out;
}
