import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, call, type Profile, type Stream } from '../api';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** How often a live stream is read again, for its viewer count. */
const LIVE_REFRESH_MS = 10_000;

/** A channel by its owner's id or username; null when there is none. */
export async function findChannel(idOrName: string): Promise<Profile | null> {
  try {
    if (UUID.test(idOrName)) return await api.user(idOrName);
    return await call<Profile>('GET', `/users/by-username/${encodeURIComponent(idOrName)}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

export interface ChannelView {
  /** undefined while loading, null when there is no such channel. */
  profile: Profile | null | undefined;
  stream: Stream | null;
  error: string | null;
  setProfile: (profile: Profile) => void;
  /** Reads the channel (and its stream) again now. */
  reload: () => void;
}

/**
 * A channel and its live stream. With `refreshMs`, the stream too, both read again that
 * often (and on `reload`) so the page notices going live, going offline and a resumed
 * broadcast; a page with the channel's chat open reloads when the room says the channel
 * changed and polls only as a fallback. A live stream alone is read every 10 s for its
 * viewer count.
 */
export function useChannel(idOrName: string, user: string | null, refreshMs: number | null): ChannelView {
  const [profile, setProfile] = useState<Profile | null | undefined>(undefined);
  const [stream, setStream] = useState<Stream | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [reloads, setReloads] = useState(0);
  const poll = refreshMs !== null;

  useEffect(() => {
    let current = true;
    const load = async () => {
      try {
        const found = await findChannel(idOrName);
        const live = poll && found?.live_stream_id ? await api.stream(found.live_stream_id) : null;
        if (!current) return;
        setProfile(found);
        setStream(live);
        setError(null);
      } catch (e) {
        if (current) setError((e as Error).message);
      }
    };
    load();
    const timer = poll ? setInterval(load, refreshMs) : undefined;
    return () => {
      current = false;
      clearInterval(timer);
    };
  }, [idOrName, user, refreshMs, reloads]);

  const live = poll && stream?.status === 'live' ? stream.id : null;
  useEffect(() => {
    if (!live) return;
    const timer = setInterval(() => {
      api
        .stream(live)
        .then((fresh) => setStream((shown) => (shown?.id === fresh.id ? fresh : shown)))
        .catch(() => {});
    }, LIVE_REFRESH_MS);
    return () => clearInterval(timer);
  }, [live]);

  return { profile, stream, error, setProfile, reload: () => setReloads((n) => n + 1) };
}
