import { useEffect, useState } from 'preact/hooks';
import { api, displayName, type Stream } from '../api';

/** Live channels, most watched first (the API lists by start time; one page of 100). */
export function Home() {
  const [streams, setStreams] = useState<Stream[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  // Each reload of the list asks for the previews anew (they change every ~10 s).
  const [loadedAt, setLoadedAt] = useState(0);
  useEffect(() => {
    let current = true;
    const load = () =>
      api
        .liveStreams()
        .then((page) => {
          if (current) {
            setStreams([...page.data].sort((a, b) => b.viewer_count - a.viewer_count));
            setLoadedAt(Date.now());
            setError(null);
          }
        })
        .catch((e: Error) => current && setError(e.message));
    load();
    const timer = setInterval(load, 15_000);
    return () => {
      current = false;
      clearInterval(timer);
    };
  }, []);
  return (
    <section aria-labelledby="live-heading">
      <h1 id="live-heading">Live now</h1>
      {error && <p role="alert">Could not load the live channels: {error}</p>}
      {streams === null && !error && <p aria-live="polite">Loading…</p>}
      {streams?.length === 0 && <p>Nobody is live right now. Go live from your dashboard.</p>}
      {streams && streams.length > 0 && (
        <ul class="cards">
          {streams.map((s) => (
            <li key={s.id} class="card">
              {s.preview_url && (
                // A fixed 16:9 box, so the card does not jump when the image arrives (or
                // never does: a broadcast's first preview takes a moment).
                <div class="card-preview">
                  <img
                    src={`${s.preview_url}?at=${loadedAt}`}
                    alt={`Live preview of ${s.title}`}
                    width={320}
                    height={180}
                    loading="lazy"
                    decoding="async"
                    onError={(event) => {
                      event.currentTarget.hidden = true;
                    }}
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
          ))}
        </ul>
      )}
    </section>
  );
}
