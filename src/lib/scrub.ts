/**
 * Removes secret values from text a person or a model will read (the output of a command run
 * with credentials injected). Each value is searched for in the forms a program is likely to
 * print it in: raw, JSON-escaped, URL-encoded, base64 and base64url — including inside a
 * longer base64 text such as an HTTP Basic header, where the value sits at any byte offset.
 *
 * Scrubbing is a safety net against accidental disclosure, not a sandbox: a command that
 * wants to leak a value can transform it in ways no scrubber recognizes.
 */

export interface Secret {
  /** Shown in place of the value: `[REDACTED:NAME]`. */
  name: string;
  value: string;
}

export interface Scrubber {
  /** Replaces every known form of every secret in `text`. */
  scrub(text: string): string;
  /**
   * For text cut off at a size limit: drops a trailing fragment that could be the start of
   * a secret, so truncation never leaves a partial value behind. Call before `scrub`.
   */
  trimPartial(text: string): string;
  /** A scrubber for text that arrives in chunks (a process output). */
  stream(): StreamScrubber;
}

/**
 * Scrubs chunked text without letting a value through when it is split across chunks: it
 * holds back only a tail that could still become a value, so interactive output is not delayed.
 */
export interface StreamScrubber {
  /** Takes a chunk, returns what can be shown now. */
  push(chunk: string): string;
  /** Returns the rest, at the end of the stream. */
  end(): string;
}

/** Below this length, base64 fragments match ordinary text too often to be worth removing. */
const minFragment = 8;
/** Lines of a multi-line value (keys, certificates) at least this long are also scrubbed alone. */
const minLine = 16;

const base64url = (b64: string) => b64.replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');

/**
 * The base64 characters that depend only on the value's bytes when it starts `offset` bytes
 * (0-2) into a longer encoded text: the characters that straddle the neighbours are dropped.
 */
function base64Cores(bytes: Buffer): string[] {
  const cores: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    const start = Math.ceil((offset * 4) / 3);
    const end = Math.floor(((offset + bytes.length) * 8) / 6);
    if (end - start >= minFragment) cores.push(encoded.slice(start, end));
  }
  return cores;
}

/** Every form of one value that is searched for. */
export function valueForms(value: string): string[] {
  const forms = new Set<string>();
  const add = (form: string) => {
    if (form.length > 0) forms.add(form);
  };
  const bytes = Buffer.from(value, 'utf8');
  add(value);
  add(JSON.stringify(value).slice(1, -1));
  // Percent-encodings: JavaScript's, the stricter RFC 3986 one (curl --data-urlencode,
  // Python's quote(safe='')), form encoding (+ for spaces), each in upper and lower case hex.
  const strict = encodeURIComponent(value).replace(
    /[!'()*]/g,
    (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  for (const encoded of [
    encodeURIComponent(value),
    strict,
    new URLSearchParams({ v: value }).toString().slice(2),
  ]) {
    add(encoded);
    add(encoded.replaceAll('%20', '+'));
    add(encoded.replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase()));
  }
  // JSON as other languages write it: \uXXXX for non-ASCII (Python) and \/ (PHP).
  const jsonAscii = JSON.stringify(value)
    .slice(1, -1)
    .replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
  add(jsonAscii);
  add(jsonAscii.replaceAll('/', '\\/'));
  add(JSON.stringify(value).slice(1, -1).replaceAll('/', '\\/'));
  add(bytes.toString('hex'));
  add(bytes.toString('hex').toUpperCase());
  const b64 = bytes.toString('base64');
  add(b64);
  add(b64.replace(/=+$/, ''));
  add(base64url(b64));
  for (const core of base64Cores(bytes)) {
    add(core);
    add(base64url(core));
  }
  if (value.includes('\n')) {
    for (const line of value.split(/\r?\n/)) {
      if (line.trim().length >= minLine) add(line.trim());
    }
  }
  return [...forms];
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function createScrubber(secrets: Secret[]): Scrubber {
  const byForm = new Map<string, string>();
  for (const secret of secrets) {
    if (secret.value === '') continue;
    for (const form of valueForms(secret.value)) {
      if (!byForm.has(form)) byForm.set(form, secret.name);
    }
  }
  // Longest first, so a value is replaced whole rather than by a shorter form inside it.
  const forms = [...byForm.keys()].sort((a, b) => b.length - a.length);
  const pattern = forms.length > 0 ? new RegExp(forms.map(escapeRegExp).join('|'), 'g') : undefined;

  const scrub = (text: string) =>
    pattern ? text.replace(pattern, (match) => `[REDACTED:${byForm.get(match)}]`) : text;

  /** Where the tail of `text` that is a strict prefix of some form starts (text.length if none). */
  function partialTailStart(text: string): number {
    let cut = text.length;
    for (const form of forms) {
      let at = text.indexOf(form[0]!, Math.max(0, text.length - form.length + 1));
      while (at >= 0 && at < cut) {
        if (form.startsWith(text.slice(at))) {
          cut = at;
          break;
        }
        at = text.indexOf(form[0]!, at + 1);
      }
    }
    return cut;
  }

  return {
    scrub,
    trimPartial: (text) => text.slice(0, partialTailStart(text)),
    stream() {
      let pending = '';
      return {
        push(chunk) {
          pending += chunk;
          let cut = partialTailStart(pending);
          // Never cut through a complete occurrence: hold all of it back instead.
          if (pattern && cut < pending.length) {
            for (const match of pending.matchAll(pattern)) {
              if (match.index >= cut) break;
              if (match.index + match[0].length > cut) {
                cut = match.index;
                break;
              }
            }
          }
          const ready = pending.slice(0, cut);
          pending = pending.slice(cut);
          return scrub(ready);
        },
        end() {
          const rest = scrub(pending);
          pending = '';
          return rest;
        },
      };
    },
  };
}
