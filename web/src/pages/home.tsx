import { useEffect, useState } from 'preact/hooks';
import { api, displayName, type Stream } from '../api';

const PAGE_SIZE = 24;

/**
 * The first `pages` pages of live channels, most watched first. Counts move between
 * requests, so a channel can slide from one page into the next: it is shown once.
 */
async function livePages(pages: number): Promise<{ streams: Stream[]; next: string | null }> {
  const streams: Stream[] = [];
  const seen = new Set<string>();
  let next: string | null = null;
  for (let page = 0; page < pages; page++) {
    const answer = await api.liveStreams(PAGE_SIZE, next);
    for (const stream of answer.data) {
      if (!seen.has(stream.id)) {
        seen.add(stream.id);
        streams.push(stream);
      }
    }
    next = answer.pagination.has_more ? answer.pagination.next_cursor : null;
    if (!next) break;
  }
  return { streams, next };
}

/** Live channels, most watched first, refreshed every 15 s; "Show more" adds a page. */
export function Home() {
  const [streams, setStreams] = useState<Stream[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [pages, setPages] = useState(1);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // Each reload of the list asks for the previews anew (they change every ~10 s).
  const [loadedAt, setLoadedAt] = useState(0);
  // Previews that failed to load, by URL: hidden until the next reload asks anew (a
  // broadcast's first preview takes a moment, so an early request can miss it).
  const [missing, setMissing] = useState<ReadonlySet<string>>(new Set());
  useEffect(() => {
    let current = true;
    const load = () =>
      livePages(pages)
        .then((list) => {
          if (current) {
            setStreams(list.streams);
            setNext(list.next);
            setLoadedAt(Date.now());
            setMissing(new Set());
            setError(null);
          }
        })
        .catch((e: Error) => current && setError(e.message))
        .finally(() => current && setBusy(false));
    load();
    const timer = setInterval(load, 15_000);
    return () => {
      current = false;
      clearInterval(timer);
    };
  }, [pages]);
  const showMore = () => {
    setBusy(true);
    setPages((n) => n + 1);
  };
  return (
    <section aria-labelledby="live-heading">
      <h1 id="live-heading">Live now</h1>
      {error && <p role="alert">Could not load the live channels: {error}</p>}
      {streams === null && !error && <p aria-live="polite">Loading…</p>}
      {streams?.length === 0 && <p>Nobody is live right now. Go live from your dashboard.</p>}
      {streams && streams.length > 0 && (
        <ul class="cards">
          {streams.map((s) => {
            const preview = s.preview_url && `${s.preview_url}?at=${loadedAt}`;
            return (
              <li key={s.id} class="card">
                {preview && (
                  // A fixed 16:9 box, so the card does not jump when the image arrives (or
                  // never does: a broadcast's first preview takes a moment).
                  <div class="card-preview">
                    <img
                      src={preview}
                      alt={`Live preview of ${s.title}`}
                      width={320}
                      height={180}
                      loading="lazy"
                      decoding="async"
                      hidden={missing.has(preview)}
                      onError={() => setMissing((failed) => new Set(failed).add(preview))}
                    />
                  </div>
                )}
                <a href={`/c/${s.owner.id}`}>
                  <span class="card-title">{s.title}</span>
                </a>
                <span class="card-creator">{displayName(s.owner)}</span>
                {s.category && <span class="card-category">{s.category}</span>}
                <span class="card-viewers">
                  {s.viewer_count} {s.viewer_count === 1 ? 'viewer' : 'viewers'}
                </span>
              </li>
            );
          })}
        </ul>
      )}
      {next && (
        <button type="button" disabled={busy} onClick={showMore}>
          Show more
        </button>
      )}
    </section>
  );
}
