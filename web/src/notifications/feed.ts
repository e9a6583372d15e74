// The live feed: one server-sent-events connection while signed in, reopened with backoff
// when it drops and restarted when the session changes hands.
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from '../api';
import { openLiveFeed, type Notification } from './client';
import { serverEvents } from './sse';

const FIRST_RETRY_MS = 1_000;
const LAST_RETRY_MS = 30_000;

/** Resolves after `ms` (or at once when `signal` aborts). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * The signed-in user's unread count, kept current by the live feed; `arrived` hears each
 * new notification. The setter lets the caller account for notifications it marks read.
 */
export function useLiveFeed(user: string | null, arrived: (notification: Notification) => void) {
  const [unread, setUnread] = useState(0);
  const listener = useRef(arrived);
  listener.current = arrived;
  useEffect(() => {
    setUnread(0);
    if (!user) return;
    const stop = new AbortController();
    const run = async () => {
      let retry = FIRST_RETRY_MS;
      while (!stop.signal.aborted) {
        try {
          for await (const { event, data } of serverEvents(await openLiveFeed(stop.signal))) {
            retry = FIRST_RETRY_MS; // connected: a later drop starts the backoff over
            if (event === 'unread') setUnread(JSON.parse(data).unread);
            if (event === 'notification') {
              setUnread((count) => count + 1);
              listener.current(JSON.parse(data).notification);
            }
          }
        } catch (e) {
          // Signed out (the session's end restarts this effect): nothing to reconnect.
          if (e instanceof ApiError && e.status === 401) return;
        }
        // Jittered, so a restarted server is not met by every tab at once.
        await pause(retry * (0.5 + Math.random() / 2), stop.signal);
        retry = Math.min(retry * 2, LAST_RETRY_MS);
      }
    };
    run();
    return () => stop.abort();
  }, [user]);
  return [unread, setUnread] as const;
}
