import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { api, displayName, type Profile, type Stream } from '../api';
import { PastBroadcasts } from '../channel/archives';
import { ChannelClips } from '../channel/clips';
import { ClipButton, CLIP_SECS } from '../clip-button';
import { useChannel, type ChannelView } from '../channel/resolve';
import { Tipping } from '../channel/tip';
import { ChatPanel } from '../chat/panel';
import { Player } from '../player';

/** Loading, failure and "no such channel" for every page about one channel. */
export function ChannelGate({ view, idOrName, children }: { view: ChannelView; idOrName: string; children: (p: Profile) => ComponentChildren }) {
  if (view.error && view.profile === undefined) return <p role="alert">Could not load the channel: {view.error}</p>;
  if (view.profile === undefined) return <p aria-live="polite">Loading…</p>;
  if (view.profile === null) {
    return (
      <section>
        <h1>Channel not found</h1>
        <p>No channel is called “{idOrName}”.</p>
      </section>
    );
  }
  return <>{children(view.profile)}</>;
}

export function Channel({ idOrName, user }: { idOrName: string; user: string | null }) {
  // The chat panel's room says when the channel changes; polling is the fallback.
  const view = useChannel(idOrName, user, 60_000);
  return (
    <ChannelGate view={view} idOrName={idOrName}>
      {(profile) => (
        <section class="channel" aria-labelledby="channel-name">
          <h1 id="channel-name">{displayName(profile)}</h1>
          <div class="channel-layout">
            <div class="channel-watch">
              <Broadcast profile={profile} stream={view.stream} signedIn={user !== null} />
            </div>
            <ChatPanel
              key={profile.id}
              channelId={profile.id}
              signedIn={user !== null}
              popoutHref={`/popout/${encodeURIComponent(profile.username)}`}
              onChannelChanged={view.reload}
            />
            <div class="channel-details">
              <About profile={profile} user={user} onChange={view.setProfile} />
              <PastBroadcasts channelId={profile.id} />
              <ChannelClips channelId={profile.id} />
            </div>
          </div>
        </section>
      )}
    </ChannelGate>
  );
}

/** The player with the stream's title and count (and "Clip" when recorded), or the offline state. */
export function Broadcast({ profile, stream, signedIn = false }: { profile: Profile; stream: Stream | null; signedIn?: boolean }) {
  if (stream?.status !== 'live') {
    return (
      <div class="offline" role="status">
        {stream?.status === 'offline'
          ? 'The broadcast was interrupted; it resumes here if the creator reconnects.'
          : `${displayName(profile)} is offline.`}
      </div>
    );
  }
  return (
    <>
      <Player key={stream.id} streamId={stream.id} title={stream.title} />
      <h2 class="stream-title">{stream.title}</h2>
      <p class="stream-meta">
        {stream.category && <span>{stream.category} · </span>}
        <span>
          {stream.viewer_count} {stream.viewer_count === 1 ? 'viewer' : 'viewers'}
        </span>
      </p>
      {signedIn && stream.recording && (
        <ClipButton description="the last 30 seconds" request={() => ({ stream_id: stream.id, duration_secs: CLIP_SECS })} />
      )}
    </>
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
      <Tipping channel={profile} user={user} />
      {!user && (
        <p>
          <a href="/login">Log in</a> to follow this channel.
        </p>
      )}
      {error && <p role="alert">{error}</p>}
    </div>
  );
}
