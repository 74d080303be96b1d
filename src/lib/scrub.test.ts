import { describe, expect, it } from 'vitest';
import { createScrubber, valueForms } from './scrub.js';

const secret = 'sk_live_51Hx/Y+z=Q&p w';
const scrubber = createScrubber([{ name: 'STRIPE', value: secret }]);
const b64 = Buffer.from(secret).toString('base64');

describe('scrubber', () => {
  it('removes the raw, JSON-escaped, URL-encoded, base64 and base64url forms', () => {
    const forms = [
      secret,
      encodeURIComponent(secret),
      encodeURIComponent(secret).replaceAll('%20', '+'),
      b64,
      b64.replace(/=+$/, ''),
      b64.replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, ''),
      JSON.stringify({ key: secret }),
    ];
    for (const form of forms) {
      const out = scrubber.scrub(`before ${form} after`);
      expect(out).toContain('[REDACTED:STRIPE]');
      expect(out).not.toContain(secret);
      expect(out).not.toContain(encodeURIComponent(secret));
      expect(out).not.toContain(b64.slice(2, 20));
    }
  });

  it('finds the value base64-encoded inside a longer text at any byte offset (HTTP Basic)', () => {
    for (const user of ['u', 'us', 'use', 'user']) {
      const basic = Buffer.from(`${user}:${secret}`).toString('base64');
      const out = scrubber.scrub(`Authorization: Basic ${basic}`);
      expect(out).toContain('[REDACTED:STRIPE]');
      // What is left of the header cannot be decoded back to more than a few characters of the value.
      const leftover = out.replace(/\[REDACTED:STRIPE\]/g, '').replace('Authorization: Basic ', '');
      expect(Buffer.from(leftover, 'base64').toString('latin1')).not.toContain(secret.slice(0, 6));
    }
  });

  it('leaves other text alone', () => {
    expect(scrubber.scrub('nothing to see')).toBe('nothing to see');
    expect(createScrubber([]).scrub('x')).toBe('x');
  });

  it('scrubs lines of a multi-line value on their own', () => {
    const key = '-----BEGIN KEY-----\nMIIEowIBAAKCAQEAx7Zs1bqL0\nq2Wv9pNc3TT5dF0kE8hJ4mR\n-----END KEY-----';
    const out = createScrubber([{ name: 'KEY', value: key }]).scrub('line: q2Wv9pNc3TT5dF0kE8hJ4mR');
    expect(out).toBe('line: [REDACTED:KEY]');
    expect(valueForms(key)).toContain('MIIEowIBAAKCAQEAx7Zs1bqL0');
  });

  it('trims a trailing partial value before truncated text is scrubbed', () => {
    expect(scrubber.trimPartial(`ok ${secret.slice(0, 7)}`)).toBe('ok ');
    expect(scrubber.trimPartial('ok done')).toBe('ok done');
  });

  it('streams: a value split across chunks never gets through, and ordinary output is not held back', () => {
    const stream = scrubber.stream();
    let shown = '';
    for (const chunk of [
      'hello\n',
      'key=',
      secret.slice(0, 5),
      secret.slice(5, 12),
      secret.slice(12),
      '\nbye\n',
    ]) {
      shown += stream.push(chunk);
      expect(shown).not.toContain(secret.slice(0, 5));
    }
    expect(stream.push('prompt> ')).toBe('prompt> ');
    shown += 'prompt> ' + stream.end();
    expect(shown).toBe('hello\nkey=[REDACTED:STRIPE]\nbye\nprompt> ');
  });

  it('streams: releases a held-back prefix that turned out not to be a value', () => {
    const stream = scrubber.stream();
    expect(stream.push('id sk_li')).toBe('id ');
    expect(stream.push('ke a cat')).toBe('sk_like a cat');
    expect(stream.end()).toBe('');
  });
});

describe('encodings other programs write', () => {
  const value = "p@ss(w0rd)!*'~ é/x";
  const scrub = createScrubber([{ name: 'PW', value }]);
  it.each([
    ['URLSearchParams form encoding', new URLSearchParams({ v: value }).toString().slice(2)],
    [
      "RFC 3986 strict (curl --data-urlencode, Python quote(safe=''))",
      encodeURIComponent(value).replace(
        /[!'()*]/g,
        (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`,
      ),
    ],
    ['JSON with \\u escapes (Python ensure_ascii)', "p@ss(w0rd)!*'~ \\u00e9/x"],
    ['JSON with \\/ (PHP)', "p@ss(w0rd)!*'~ é\\/x"],
    ['hex', Buffer.from(value).toString('hex')],
    ['HEX', Buffer.from(value).toString('hex').toUpperCase()],
  ])('%s', (_name, encoded) => {
    const out = scrub.scrub(`before ${encoded} after`);
    expect(out).not.toContain(encoded);
    expect(out.startsWith('before ')).toBe(true);
  });
});
