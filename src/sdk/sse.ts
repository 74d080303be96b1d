/**
 * A minimal server-sent-events reader over fetch's body stream (no EventSource: it cannot send
 * an Authorization header). Each `data:` payload is a JSON lease event.
 */
import { parseLease, parseLeaseEvent } from './parse.js';
import type { LeaseEvent } from './types.js';

interface RawEvent {
  event: string | undefined;
  data: string;
}

/** Splits an SSE text stream into events; comments (`:` keep-alives) are skipped. */
export async function* readSse(
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
  onData?: () => void,
): AsyncGenerator<RawEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const cancel = () => void reader.cancel().catch(() => {});
  signal?.addEventListener('abort', cancel, { once: true });
  let buffer = '';
  let event: string | undefined;
  let data: string[] = [];
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      onData?.();
      buffer += decoder.decode(value, { stream: true });
      let newline = buffer.search(/\r?\n/);
      while (newline >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(buffer[newline] === '\r' ? newline + 2 : newline + 1);
        if (line === '') {
          if (data.length > 0) yield { event, data: data.join('\n') };
          event = undefined;
          data = [];
        } else if (!line.startsWith(':')) {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'data') data.push(value);
          else if (field === 'event') event = value;
        }
        newline = buffer.search(/\r?\n/);
      }
    }
  } finally {
    signal?.removeEventListener('abort', cancel);
    cancel();
  }
}

const eventTypes = new Set(['issued', 'renewed', 'revoked', 'expired']);

/** The lease events of an event-stream answer; `onData` on every chunk read (a heartbeat too). */
export async function* readLeaseEvents(
  response: Response,
  signal?: AbortSignal,
  onData?: () => void,
): AsyncGenerator<LeaseEvent> {
  if (!response.body) return;
  for await (const raw of readSse(response.body, signal, onData)) {
    let payload: unknown;
    try {
      payload = JSON.parse(raw.data);
    } catch {
      continue;
    }
    if (typeof payload !== 'object' || payload === null) continue;
    if ('lease' in payload && 'type' in payload) {
      yield parseLeaseEvent(payload);
    } else if (raw.event && eventTypes.has(raw.event)) {
      // Also accept `event: revoked` with the bare lease as data.
      const { value: _dropped, ...lease } = parseLease(payload);
      yield { type: raw.event as LeaseEvent['type'], lease };
    }
  }
}
