import { useEffect, useState } from 'preact/hooks';
import { api, displayName, type Stream } from '../api';

/** Live channels, most watched first (the API lists by start time; one page of 100). */
export function Home() {
  const [streams, setStreams] = useState<Stream[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let current = true;
    const load = () =>
      api
        .liveStreams()
        .then((page) => {
          if (current) {
            setStreams([...page.data].sort((a, b) => b.viewer_count - a.viewer_count));
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
