/**
 * Removes secret values from text a person or a model will read (the output of a command run
 * with credentials injected). Each value is searched for in the forms a program is likely to
 * print it in: raw, JSON-escaped, URL-encoded (JavaScript, RFC 3986, Python's quote keeping
 * "/", form encoding), shell-quoted (`printf %q`, `shlex.quote`), hex, base64 and base64url —
 * including inside a longer base64 text such as an HTTP Basic header (where the value sits at
 * any byte offset, and a short password is found by decoding the header) — and in the
 * multi-line layouts tools write: base64 wrapped at 76 columns, `xxd -p` hex wrapped at 60,
 * and the dumps of `xxd`, `hexdump` and `od` (whose bytes are read back and searched).
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

/** Bash's `$'...'` quoting, as `printf %q` writes it for control or (outside UTF-8) non-ASCII bytes. */
function ansiCQuoted(bytes: Buffer): string {
  const named: Record<number, string> = {
    7: 'a',
    8: 'b',
    9: 't',
    10: 'n',
    11: 'v',
    12: 'f',
    13: 'r',
    27: 'E',
  };
  let out = '';
  for (const byte of bytes) {
    if (byte === 0x27) out += "\\'";
    else if (byte === 0x5c) out += '\\\\';
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else out += named[byte] ? `\\${named[byte]}` : `\\${byte.toString(8).padStart(3, '0')}`;
  }
  return out;
}

/**
 * Bash's `printf %q` of a printable value (bash 5.2, checked against it): a backslash before
 * a space, a tab and each of ! " $ & ' ( ) * , ; < > ? [ \ ] ^ ` { | }, before `#` only at the
 * start (a comment there), and before `~` at the start or after `=` or `:` (where it expands).
 */
function printfQ(value: string): string {
  const chars = [...value];
  return chars
    .map((ch, i) => {
      const prev = chars[i - 1];
      const quoted =
        /[ \t!"$&'()*,;<>?[\\\]^`{|}]/.test(ch) ||
        (ch === '#' && i === 0) ||
        (ch === '~' && (i === 0 || prev === '=' || prev === ':'));
      return quoted ? `\\${ch}` : ch;
    })
    .join('');
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
  // Python's urllib.parse.quote keeps "/" by default.
  add(strict.replaceAll('%2F', '/'));
  add(strict.replaceAll('%2F', '/').replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase()));
  // Shell quoting: bash `printf %q` (backslashes, as bash 5 writes them, and the wider form of
  // earlier versions), and shlex.quote / single quotes around a "'".
  add(printfQ(value));
  add(value.replace(/[ \t'"\\&$!*()[\]{};|<>?`#]/g, (ch) => `\\${ch}`).replace(/^~/, '\\~'));
  add(ansiCQuoted(bytes));
  // Inside double quotes (bash `declare -p`, `set`): \ before " $ ` and \.
  add(value.replace(/["$`\\]/g, (ch) => `\\${ch}`));
  add(value.replaceAll("'", `'"'"'`));
  add(value.replaceAll("'", `'\\''`));
  if (value.includes('\n')) {
    for (const line of value.split(/\r?\n/)) {
      if (line.trim().length >= minLine) add(line.trim());
    }
  }
  // A C program (or an error message) stops at a NUL byte: the pieces between them count too.
  if (value.includes('\0')) {
    for (const piece of value.split('\0')) if (piece.length >= minFragment) add(piece);
  }
  return [...forms];
}

/** Lines that are nothing but base64 or hex characters: wrapped encodings (`base64`, `xxd -p`). */
const encodedLine = /^[A-Za-z0-9+/=_-]{4,}\r?$/;

/** One line of a dump, decoded to the bytes it shows; undefined when it is not one. */
function dumpLineBytes(line: string): Buffer | undefined {
  const text = line.replace(/\r$/, '');
  // xxd: "00000000: 736b 5f6c 6976 655f  sk_live_"
  let match = /^[0-9a-f]{8}: ((?:[0-9a-f]{2,4} )+) *.*$/i.exec(text); // and `xxd -u`
  if (match) return Buffer.from(match[1]!.replaceAll(' ', ''), 'hex');
  // hexdump -C, od -A x -t x1z: "00000000  73 6b 5f 6c  |sk_l|"; od -t x1 / -An -tx1: bytes.
  match = /^(?:[0-9a-f]{6,8})?((?:\s{1,2}[0-9a-f]{2})+)\s*(?:\s+[|>].*[|<])?$/i.exec(text);
  if (match && /\s/.test(match[1]!)) return Buffer.from(match[1]!.replace(/\s+/g, ''), 'hex');
  // hexdump, od -x: little-endian 16-bit words in hex.
  match = /^(?:[0-9a-f]{7,8})?((?: +[0-9a-f]{4})+)$/.exec(text);
  if (match) {
    const words = match[1]!.trim().split(/ +/);
    return Buffer.concat(
      words.map((w) => Buffer.from([Number.parseInt(w.slice(2), 16), Number.parseInt(w.slice(0, 2), 16)])),
    );
  }
  // od (default): little-endian 16-bit words in octal.
  match = /^[0-7]{7}((?: [0-7]{6})+)$/.exec(text);
  if (match) {
    const words = match[1]!
      .trim()
      .split(' ')
      .map((w) => Number.parseInt(w, 8));
    return Buffer.concat(words.map((w) => Buffer.from([w & 0xff, w >> 8])));
  }
  // od -c (and od -An -c, without offsets): four-column cells of characters, escapes and octal bytes.
  match = /^(?:[0-7]{7})?((?: {3}.| {2}\\.| [0-7]{3})+)$/.exec(text);
  if (match) {
    const escapes: Record<string, number> = {
      '\\0': 0,
      '\\a': 7,
      '\\b': 8,
      '\\f': 12,
      '\\n': 10,
      '\\r': 13,
      '\\t': 9,
      '\\v': 11,
    };
    const cells = match[1]!.match(/.{4}/g) ?? [];
    return Buffer.from(
      cells.map((cell) => {
        const c = cell.trim();
        if (c === '') return 32;
        if (/^[0-7]{3}$/.test(c)) return Number.parseInt(c, 8);
        return escapes[c] ?? c.charCodeAt(0);
      }),
    );
  }
  return undefined;
}

/** Is a line an offset alone (the last line of od and hexdump)? */
const offsetOnly = /^[0-9a-f]{7,8}:?\r?$/i;

interface Needle {
  name: string;
  /** Forms that may appear in a wrapped encoding once its line breaks are removed. */
  encoded: string[];
  /** Windows of the value's bytes that give a dump away. */
  windows: Buffer[];
  value: string;
}

/** Byte windows of a value: the whole of a short one, else every 12-byte stretch. */
function byteWindows(value: string): Buffer[] {
  const bytes = Buffer.from(value, 'utf8');
  const size = Math.min(bytes.length, 12);
  if (bytes.length > 4096) return [bytes.subarray(0, size)];
  const out: Buffer[] = [];
  for (let at = 0; at + size <= bytes.length; at++) out.push(bytes.subarray(at, at + size));
  return out;
}

/**
 * Replaces runs of lines that together hold a value: wrapped base64 or hex, and dumps. Works
 * on whole lines, so a run that gives a value away is replaced whole.
 */
function scrubLineRuns(text: string, needles: Needle[]): string {
  if (needles.length === 0 || !text.includes('\n')) return text;
  const lines = text.split('\n');
  const out: string[] = [];
  let index = 0;
  while (index < lines.length) {
    const line = lines[index]!;
    if (encodedLine.test(line)) {
      let end = index;
      while (end + 1 < lines.length && encodedLine.test(lines[end + 1]!)) end++;
      if (end > index) {
        const join = (from: number, to: number) =>
          lines
            .slice(from, to + 1)
            .map((l) => l.replace(/\r$/, ''))
            .join('');
        const holds = (n: Needle, from: number, to: number) =>
          n.encoded.some((f) => join(from, to).includes(f));
        const hit = needles.find((n) => holds(n, index, end));
        if (hit) {
          // The smallest stretch of lines that still holds it: neighbours that merely look encoded stay.
          let from = index;
          let to = end;
          while (from < to && holds(hit, from + 1, to)) from++;
          while (to > from && holds(hit, from, to - 1)) to--;
          out.push(...lines.slice(index, from), `[REDACTED:${hit.name}]`);
          index = to + 1;
          continue;
        }
      }
    }
    if (dumpLineBytes(line)) {
      let end = index;
      const parts: Buffer[] = [];
      while (end < lines.length) {
        const bytes = dumpLineBytes(lines[end]!);
        if (!bytes) break;
        parts.push(bytes);
        end++;
      }
      const bytes = Buffer.concat(parts);
      const hit = needles.find((n) => n.windows.some((w) => bytes.includes(w)));
      if (hit) {
        out.push(`[REDACTED:${hit.name}]`);
        index = end;
        if (index < lines.length && offsetOnly.test(lines[index]!)) index++;
        continue;
      }
    }
    out.push(line);
    index++;
  }
  return out.join('\n');
}

/** `Basic <base64>` headers whose password is a value, however short. */
function scrubBasicAuth(text: string, secrets: Secret[]): string {
  if (secrets.length === 0) return text;
  return text.replace(/(\bBasic\s+)([A-Za-z0-9+/]+={0,2})/gi, (whole, prefix: string, encoded: string) => {
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const password = colon >= 0 ? decoded.slice(colon + 1) : decoded;
    const hit = secrets.find(
      (s) => password === s.value || (s.value.length >= 4 && decoded.includes(s.value)),
    );
    return hit ? `${prefix}[REDACTED:${hit.name}]` : whole;
  });
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

  const usable = secrets.filter((secret) => secret.value !== '');
  const needles: Needle[] = usable.map((secret) => ({
    name: secret.name,
    value: secret.value,
    encoded: valueForms(secret.value).filter(
      (form) => form.length >= minFragment && /^[A-Za-z0-9+/=_-]+$/.test(form),
    ),
    windows: byteWindows(secret.value),
  }));
  const scrub = (text: string) => {
    const runs = scrubBasicAuth(scrubLineRuns(text, needles), usable);
    return pattern ? runs.replace(pattern, (match) => `[REDACTED:${byForm.get(match)}]`) : runs;
  };

  /** Where a trailing run of lines that may still become a wrapped encoding or dump starts. */
  function openRunStart(text: string): number {
    if (needles.length === 0) return text.length;
    const lines = text.split('\n');
    const last = lines.pop() ?? '';
    if (last !== '' && !/^[A-Za-z0-9+/=_-]*$/.test(last) && !/^[0-9a-f]{7,8}[: ]/i.test(last))
      return text.length;
    let start = text.length - last.length;
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = lines[i]!;
      if (!encodedLine.test(line) && !dumpLineBytes(line) && !offsetOnly.test(line)) break;
      start -= line.length + 1;
    }
    return start;
  }

  /**
   * Where a trailing `Basic <base64>` (or a start of the word `Basic`) begins, which the next
   * chunk may complete into a header whose short password only decoding finds (text.length if
   * none).
   */
  function basicTailStart(text: string): number {
    if (usable.length === 0) return text.length;
    const tail = /\bB(?:a(?:s(?:i(?:c(?:\s+[A-Za-z0-9+/]*={0,2})?)?)?)?)?$/i.exec(text);
    return tail ? tail.index : text.length;
  }

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
          let cut = Math.min(partialTailStart(pending), openRunStart(pending), basicTailStart(pending));
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
