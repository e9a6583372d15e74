import { useRef, useState } from 'preact/hooks';
import { api, displayName, type Archive, type Visibility } from '../api';
import { duration } from '../channel/media-list';
import { ClipButton, clipRange } from '../clip-button';
import { navigate } from '../router';
import { Player } from '../player';
import { usePolled } from '../use-polled';

/** How often a processing archive is asked for again, to show its progress. */
const PROGRESS_MS = 5_000;

/** A past broadcast: its player, facts and processing state; the owner's controls. */
export function Video({ id, user }: { id: string; user: string | null }) {
  const polled = usePolled(() => api.archive(id), `${id} ${user}`, (a) => a.status === 'processing', PROGRESS_MS);
  const { value: archive, error } = polled;
  const video = useRef<HTMLVideoElement>(null);

  if (error && archive === undefined) return <p role="alert">Could not load the video: {error}</p>;
  if (archive === undefined) return <p aria-live="polite">Loading…</p>;
  if (archive === null) {
    return (
      <section>
        <h1>Video not found</h1>
        <p>It was deleted, made private, or never existed.</p>
      </section>
    );
  }
  return (
    <section class="video" aria-labelledby="video-title">
      {/* When the processed replay becomes ready while it is open, the player switches
          to it (the recording as streamed is then removed) and goes on where it was. */}
      {archive.playlist_url ? (
        <Player key={archive.id} src={archive.playlist_url} title={archive.title} videoRef={video} />
      ) : (
        <div class="offline" role="status">
          This recording cannot be played.
        </div>
      )}
      <h1 id="video-title">{archive.title}</h1>
      <p class="stream-meta">
        <a href={`/c/${encodeURIComponent(archive.creator.username)}`}>{displayName(archive.creator)}</a> ·{' '}
        {archive.category && <span>{archive.category} · </span>}
        <time dateTime={archive.created_at}>{new Date(archive.created_at).toLocaleString()}</time>
        {archive.duration_secs !== null && ` · ${duration(archive.duration_secs)}`}
      </p>
      {user && archive.playlist_url && (
        <ClipButton
          description="30 seconds around where the video is"
          request={() => ({
            archive_id: archive.id,
            ...clipRange(video.current?.currentTime ?? 0, archive.duration_secs ?? video.current?.duration ?? null),
          })}
        />
      )}
      <ProcessingState archive={archive} />
      {user === archive.creator.id && <OwnerControls archive={archive} onChange={polled.set} />}
    </section>
  );
}

function ProcessingState({ archive }: { archive: Archive }) {
  if (archive.status === 'processing') {
    return (
      <p role="status">
        Processing the replay ({Math.round(archive.progress * 100)}%). Meanwhile it plays as it was streamed.
      </p>
    );
  }
  if (archive.status === 'failed') {
    return (
      <p role="status">
        Processing failed{archive.failure_reason ? `: ${archive.failure_reason}` : ''}. The recording plays as it was streamed.
      </p>
    );
  }
  return null;
}

function OwnerControls({ archive, onChange }: { archive: Archive; onChange: (archive: Archive) => void }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const act = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const setVisibility = (visibility: Visibility) =>
    act(async () => onChange(await api.setArchiveVisibility(archive.id, visibility)));
  const remove = () =>
    act(async () => {
      await api.deleteArchive(archive.id);
      navigate(`/c/${encodeURIComponent(archive.creator.username)}`);
    });
  return (
    <section class="owner-controls" aria-labelledby="owner-heading">
      <h2 id="owner-heading">Your video</h2>
      <label for="visibility">Who can watch</label>
      <select
        id="visibility"
        value={archive.visibility}
        disabled={busy}
        onChange={(e) => setVisibility((e.currentTarget as HTMLSelectElement).value as Visibility)}
      >
        <option value="public">Public: listed on your channel</option>
        <option value="unlisted">Unlisted: anyone with the link</option>
        <option value="private">Private: only you</option>
      </select>
      {confirming ? (
        <>
          <button type="button" class="danger" disabled={busy} onClick={remove}>
            Delete for good
          </button>
          <button type="button" class="secondary" disabled={busy} onClick={() => setConfirming(false)}>
            Keep it
          </button>
        </>
      ) : (
        <button type="button" class="secondary" onClick={() => setConfirming(true)}>
          Delete video
        </button>
      )}
      {error && <p role="alert">{error}</p>}
    </section>
  );
}
