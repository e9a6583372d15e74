import { useEffect, useState } from 'preact/hooks';
import { api, type Archive } from '../api';

const PAGE_SIZE = 10;

/** `1:02:03` or `2:03`. */
export function duration(secs: number): string {
  const total = Math.round(secs);
  const [h, m, s] = [Math.floor(total / 3600), Math.floor(total / 60) % 60, total % 60];
  const two = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

/** What a list says of an archive's state: nothing once it is ready. */
function state(archive: Archive): string | null {
  if (archive.status === 'processing') return 'Processing';
  if (archive.status === 'failed') return 'Processing failed';
  return null;
}

/** The channel's past broadcasts, newest first, a page at a time. */
export function PastBroadcasts({ channelId }: { channelId: string }) {
  const [archives, setArchives] = useState<Archive[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const load = async (cursor: string | null) => {
    setBusy(true);
    try {
      const page = await api.channelArchives(channelId, PAGE_SIZE, cursor);
      setArchives((shown) => [...(cursor ? (shown ?? []) : []), ...page.data]);
      setNext(page.pagination.has_more ? page.pagination.next_cursor : null);
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => {
    load(null);
  }, [channelId]);

  return (
    <section class="archives" aria-labelledby="archives-heading">
      <h2 id="archives-heading">Past broadcasts</h2>
      {archives?.length === 0 && <p>No past broadcasts yet.</p>}
      {archives && archives.length > 0 && (
        <ul class="archive-list">
          {archives.map((archive) => (
            <li key={archive.id}>
              {archive.thumbnail_url && <img src={archive.thumbnail_url} alt="" width={160} height={90} loading="lazy" />}
              <a href={`/videos/${archive.id}`} class="archive-title">
                {archive.title}
              </a>{' '}
              <span class="archive-meta">
                <time dateTime={archive.created_at}>{new Date(archive.created_at).toLocaleDateString()}</time>
                {archive.duration_secs !== null && ` · ${duration(archive.duration_secs)}`}
                {state(archive) && ` · ${state(archive)}`}
              </span>
            </li>
          ))}
        </ul>
      )}
      {next && (
        <button type="button" disabled={busy} onClick={() => load(next)}>
          Load more
        </button>
      )}
      {error && <p role="alert">Could not load the past broadcasts: {error}</p>}
    </section>
  );
}
