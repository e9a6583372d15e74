// Server-sent events read from a fetch() body: EventSource cannot send an Authorization
// header, and the token must not travel in the URL (logs, history, referrers).

export interface ServerEvent {
  event: string;
  data: string;
}

/** The events of a `text/event-stream` body, in order (the WHATWG event-stream format). */
export async function* serverEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerEvent> {
  const reader = body.getReader();
  const text = new TextDecoder();
  let pending = '';
  let event = '';
  let data: string[] = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      pending += text.decode(value, { stream: true });
      // A chunk may end between the "\r" and "\n" of one line break: keep the "\r".
      const complete = pending.endsWith('\r') ? pending.slice(0, -1) : pending;
      const lines = complete.split(/\r\n|\r|\n/);
      pending = lines.pop()! + pending.slice(complete.length);
      for (const line of lines) {
        if (line === '') {
          if (data.length > 0) yield { event: event || 'message', data: data.join('\n') };
          event = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue; // a comment: the server's keep-alive
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
    }
  } finally {
    // Stopped early (or failed): close the connection rather than leave it open.
    reader.cancel().catch(() => {});
  }
}
