/**
 * Server-sent events read with fetch: EventSource cannot send an Authorization header, and
 * the token must not go in the URL. The parser is fed text chunks and yields whole events.
 */
export interface SseMessage {
  event: string;
  data: string;
}

export function createSseParser(onMessage: (message: SseMessage) => void) {
  let buffer = '';
  let event = '';
  let data: string[] = [];
  return (chunk: string) => {
    buffer += chunk;
    let newline = buffer.search(/\r\n|\r|\n/);
    // A "\r" at the end may be the first half of "\r\n": wait for the next chunk.
    while (newline >= 0 && !(newline === buffer.length - 1 && buffer[newline] === '\r')) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
      if (line === '') {
        if (data.length > 0) onMessage({ event: event || 'message', data: data.join('\n') });
        event = '';
        data = [];
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      newline = buffer.search(/\r\n|\r|\n/);
    }
  };
}

export interface StreamHandlers {
  onOpen(): void;
  onMessage(message: SseMessage): void;
  /** The stream ended or failed; `retry` is false when the token is no longer accepted. */
  onClose(reason: string, retry: boolean): void;
}

/** Opens the stream; abort the signal to close it. */
export async function openEventStream(
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
  handlers: StreamHandlers,
): Promise<void> {
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { ...headers, accept: 'text/event-stream' },
      credentials: 'omit',
      signal,
    });
  } catch (err) {
    if (!signal.aborted) handlers.onClose(`cannot reach the server: ${(err as Error).message}`, true);
    return;
  }
  if (!response.ok || !response.body) {
    handlers.onClose(`the event stream answered ${response.status}`, response.status !== 401);
    return;
  }
  handlers.onOpen();
  const feed = createSseParser(handlers.onMessage);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      feed(value);
    }
    if (!signal.aborted) handlers.onClose('the event stream ended', true);
  } catch (err) {
    if (!signal.aborted) handlers.onClose(`the event stream failed: ${(err as Error).message}`, true);
  }
}
