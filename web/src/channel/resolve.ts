import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, call, type Profile, type Stream } from '../api';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const REFRESH_MS = 10_000;

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
}

/**
 * A channel and its live stream. With `poll`, re-read every few seconds so the page
 * notices going live, going offline and a resumed broadcast.
 */
export function useChannel(idOrName: string, user: string | null, poll: boolean): ChannelView {
  const [profile, setProfile] = useState<Profile | null | undefined>(undefined);
  const [stream, setStream] = useState<Stream | null>(null);
  const [error, setError] = useState<string | null>(null);

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
    const timer = poll ? setInterval(load, REFRESH_MS) : undefined;
    return () => {
      current = false;
      clearInterval(timer);
    };
  }, [idOrName, user, poll]);

  return { profile, stream, error, setProfile };
}
