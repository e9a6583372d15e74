import { useEffect, useState } from 'preact/hooks';
import { call, type Page } from '../api';

interface Archive {
  id: string;
  title: string;
  duration_ms: number;
  created_at: string;
}

const PAGE_SIZE = 10;

function duration(ms: number): string {
  const total = Math.round(ms / 1000);
  const [h, m, s] = [Math.floor(total / 3600), Math.floor(total / 60) % 60, total % 60];
  const two = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
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
      const query = `limit=${PAGE_SIZE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page = await call<Page<Archive>>('GET', `/users/${channelId}/archives?${query}`);
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
            // The archive page arrives with the archives issue; until then, the facts.
            <li key={archive.id}>
              <span class="archive-title">{archive.title}</span>{' '}
              <span class="archive-meta">
                <time dateTime={archive.created_at}>{new Date(archive.created_at).toLocaleDateString()}</time> ·{' '}
                {duration(archive.duration_ms)}
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
