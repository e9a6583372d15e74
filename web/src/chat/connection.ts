// One chat socket that stays connected: it reconnects with backoff whenever the socket
// closes (a server restart closes it with 1001), at once when the server closed it because
// the token it logged in with expired (4001), and follows the session. The token goes in
// the `auth` frame, never in the URL (URLs end up in logs and browser history).
import { accessToken, api, onSessionChange, signedInAs } from '../api';
import type { ClientFrame, ServerFrame } from './protocol';

export type ConnectionState = 'connecting' | 'open' | 'closed';

export interface ChatConnection {
  /** False when the socket is not open (the frame is dropped). */
  send(frame: ClientFrame): boolean;
  close(): void;
}

const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 30_000;
const EXPIRED = new Set(['invalid_token', 'token_expired']);
/** The server's close code for a socket whose token expired. */
const TOKEN_EXPIRED = 4001;

export function connectChat(
  channelId: string,
  options: { authenticate: boolean },
  onFrame: (frame: ServerFrame) => void,
  onState: (state: ConnectionState) => void,
): ChatConnection {
  let socket: WebSocket | null = null;
  let failures = 0;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let disposed = false;
  let authedAs: string | null = null;
  let refreshedForAuth = false;

  const send = (frame: ClientFrame) => {
    if (socket?.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  };
  const authenticate = () => {
    const token = options.authenticate ? accessToken() : null;
    authedAs = token ? signedInAs() : null;
    if (token) send({ type: 'auth', token });
  };

  const open = () => {
    onState('connecting');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/api/channels/${channelId}/chat`);
    socket = ws;
    ws.onopen = authenticate;
    ws.onmessage = (event) => {
      let frame: ServerFrame;
      try {
        frame = JSON.parse(event.data as string);
      } catch {
        return;
      }
      if (frame.type === 'welcome') {
        failures = 0;
        onState('open');
      } else if (frame.type === 'authenticated') {
        refreshedForAuth = false;
      } else if (frame.type === 'error' && EXPIRED.has(frame.code) && !refreshedForAuth) {
        // Only `auth` is answered with these: renew the token (call() refreshes on 401), retry once.
        refreshedForAuth = true;
        api.me().then(authenticate, () => {});
        return;
      }
      onFrame(frame);
    };
    ws.onclose = (event) => {
      if (socket !== ws || disposed) return;
      socket = null;
      onState('closed');
      // Not a failure: the new socket logs in with the current token (renewed if stale).
      if (event.code === TOKEN_EXPIRED) {
        open();
        return;
      }
      // Exponential backoff with jitter, so a restarted server is not stormed by every viewer.
      const delay = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** failures) * (0.5 + Math.random() / 2);
      failures += 1;
      retry = setTimeout(open, delay);
    };
  };

  const reopen = () => {
    clearTimeout(retry);
    const old = socket;
    socket = null;
    old?.close();
    open();
  };

  // Logging in on an anonymous socket is one frame; a different user (or none) needs a new
  // socket. A socket not open yet authenticates as whoever is signed in when it opens.
  const stopListening = onSessionChange(() => {
    if (!options.authenticate || signedInAs() === authedAs || socket?.readyState !== WebSocket.OPEN) return;
    if (authedAs === null) authenticate();
    else reopen();
  });

  open();
  return {
    send,
    close() {
      disposed = true;
      stopListening();
      clearTimeout(retry);
      socket?.close();
    },
  };
}
