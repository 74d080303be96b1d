/**
 * Key ranges as etcd defines them: keys are compared as UTF-8 bytes, and a prefix covers
 * [prefix, prefixEnd(prefix)). Both stores use these so that ordering and paging agree.
 */

export const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8');

/**
 * The smallest key greater than every key starting with `prefix`, or undefined when no such
 * key exists (an empty prefix, or one made only of 0xff bytes): the range is then unbounded.
 */
export function prefixEnd(prefix: Buffer): Buffer | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) {
      const end = Buffer.from(prefix.subarray(0, i + 1));
      end[i] = prefix[i]! + 1;
      return end;
    }
  }
  return undefined;
}

/** The first key of a page: the prefix itself, or the key right after `startAfter`. */
export function rangeStart(prefix: Buffer, startAfter: Buffer | undefined): Buffer {
  if (startAfter === undefined) return prefix;
  const after = Buffer.concat([startAfter, Buffer.from([0])]);
  return Buffer.compare(after, prefix) > 0 ? after : prefix;
}
