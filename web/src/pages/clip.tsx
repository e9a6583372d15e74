import { api, displayName, type Clip } from '../api';
import { duration } from '../channel/media-list';
import { Alert } from '../dashboard/ui';
import { useAction } from '../dashboard/hooks';
import { Player } from '../player';
import { navigate } from '../router';
import { usePolled } from '../use-polled';

/** How often a clip being cut is asked for again. */
const POLL_MS = 2_000;

/** A clip: "Processing…" until it is cut, then its HLS playlist in the archives' player; delete for its clipper and the channel's owner. */
export function ClipPage({ id, user }: { id: string; user: string | null }) {
  const { value: clip, error } = usePolled(() => api.clip(id), id, (c) => c.status === 'processing', POLL_MS);

  if (error && clip === undefined) return <p role="alert">Could not load the clip: {error}</p>;
  if (clip === undefined) return <p aria-live="polite">Loading…</p>;
  if (clip === null) {
    return (
      <section>
        <h1>Clip not found</h1>
        <p>It was deleted or never existed.</p>
      </section>
    );
  }
  const channel = `/c/${encodeURIComponent(clip.channel.username)}`;
  return (
    <section class="video" aria-labelledby="clip-title">
      {clip.status === 'ready' && clip.playlist_url ? (
        <Player key={clip.id} src={clip.playlist_url} title={clip.title} />
      ) : (
        <div class="offline" role="status">
          {clip.status === 'failed'
            ? `This clip could not be made${clip.failure_reason ? `: ${clip.failure_reason}` : ''}.`
            : 'Processing…'}
        </div>
      )}
      <h1 id="clip-title">{clip.title}</h1>
      <p class="stream-meta">
        Clipped on <a href={channel}>{displayName(clip.channel)}</a> · {duration(clip.duration_secs)}
        {clip.archive_id && (
          <>
            {' '}· <a href={`/videos/${clip.archive_id}`}>Watch the whole broadcast</a>
          </>
        )}
      </p>
      {user && (user === clip.clipper_id || user === clip.channel.id) && <DeleteClip clip={clip} after={channel} />}
    </section>
  );
}

function DeleteClip({ clip, after }: { clip: Clip; after: string }) {
  const action = useAction();
  const remove = async () => {
    if (await action.run(() => api.deleteClip(clip.id))) navigate(after);
  };
  return (
    <div class="owner-controls">
      <button type="button" class="danger" disabled={action.busy} onClick={remove}>
        Delete clip
      </button>
      <Alert error={action.error} context="Could not delete the clip" />
    </div>
  );
}
