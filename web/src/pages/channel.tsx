import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, displayName, type Profile, type Stream } from '../api';
import { Player } from '../player';

const REFRESH_MS = 10_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The API addresses users by id; a username is found among the live channels for now. */
async function resolve(idOrName: string): Promise<Profile | null> {
  if (UUID.test(idOrName)) return api.user(idOrName);
  const live = await api.liveStreams();
  const owner = live.data.find((s) => s.owner.username.toLowerCase() === idOrName.toLowerCase())?.owner;
  return owner ? api.user(owner.id) : null;
}

export function Channel({ idOrName, user, embedded = false }: { idOrName: string; user: string | null; embedded?: boolean }) {
  const [profile, setProfile] = useState<Profile | null | undefined>(undefined);
  const [stream, setStream] = useState<Stream | null>(null);
  const [error, setError] = useState<string | null>(null);

  // Polled: the page notices going live, going offline and a resumed broadcast.
  useEffect(() => {
    let current = true;
    const load = async () => {
      try {
        const found = await resolve(idOrName);
        const live = found?.live_stream_id ? await api.stream(found.live_stream_id) : null;
        if (!current) return;
        setProfile(found);
        setStream(live);
        setError(null);
      } catch (e) {
        if (current) setError(e instanceof ApiError && e.status === 404 ? null : (e as Error).message);
        if (current && e instanceof ApiError && e.status === 404) setProfile(null);
      }
    };
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      current = false;
      clearInterval(timer);
    };
  }, [idOrName, user]);

  if (error && profile === undefined) return <p role="alert">Could not load the channel: {error}</p>;
  if (profile === undefined) return <p aria-live="polite">Loading…</p>;
  if (profile === null) {
    return (
      <section>
        <h1>Channel not found</h1>
        <p>No channel is called “{idOrName}”.</p>
      </section>
    );
  }
  const playing = stream && stream.status === 'live';
  return (
    <section class="channel" aria-labelledby="channel-name">
      <h1 id="channel-name">{displayName(profile)}</h1>
      {playing ? (
        <>
          <Player key={stream.id} streamId={stream.id} title={stream.title} />
          <h2 class="stream-title">{stream.title}</h2>
          <p class="stream-meta">
            {stream.category && <span>{stream.category} · </span>}
            <span>
              {stream.viewer_count} {stream.viewer_count === 1 ? 'viewer' : 'viewers'}
            </span>
          </p>
        </>
      ) : (
        <div class="offline" role="status">
          {stream?.status === 'offline'
            ? 'The broadcast was interrupted; it resumes here if the creator reconnects.'
            : `${displayName(profile)} is offline.`}
        </div>
      )}
      {!embedded && <About profile={profile} user={user} onChange={setProfile} />}
    </section>
  );
}

function About({ profile, user, onChange }: { profile: Profile; user: string | null; onChange: (p: Profile) => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const toggle = async () => {
    setBusy(true);
    setError(null);
    try {
      if (profile.followed_by_you) await api.unfollow(profile.id);
      else await api.follow(profile.id);
      onChange(await api.user(profile.id));
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="about">
      <p>
        <span class="username">@{profile.username}</span> · {profile.follower_count}{' '}
        {profile.follower_count === 1 ? 'follower' : 'followers'}
      </p>
      {profile.bio && <p class="bio">{profile.bio}</p>}
      {user && user !== profile.id && (
        <button type="button" disabled={busy} onClick={toggle}>
          {profile.followed_by_you ? 'Unfollow' : 'Follow'}
        </button>
      )}
      {!user && (
        <p>
          <a href="/login">Log in</a> to follow this channel.
        </p>
      )}
      {error && <p role="alert">{error}</p>}
    </div>
  );
}
