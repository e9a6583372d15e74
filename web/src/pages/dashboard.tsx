import { useState } from 'preact/hooks';
import { api, type StreamKey } from '../api';

export function SignInFirst({ what }: { what: string }) {
  return (
    <section>
      <h1>{what}</h1>
      <p>
        <a href="/login">Log in</a> to see your {what.toLowerCase()}.
      </p>
    </section>
  );
}

/** The creator's dashboard: what to paste into OBS, the key revealed only on demand. */
export function Dashboard({ user }: { user: string | null }) {
  const [key, setKey] = useState<StreamKey | null>(null);
  const [error, setError] = useState<string | null>(null);
  if (!user) return <SignInFirst what="Dashboard" />;
  const run = (action: () => Promise<StreamKey>) =>
    action()
      .then((k) => {
        setKey(k);
        setError(null);
      })
      .catch((e: Error) => setError(e.message));
  return (
    <section>
      <h1>Dashboard</h1>
      <h2>Go live from OBS</h2>
      <p>
        In OBS: Settings → Stream → Service “Custom”, then paste the server and the stream key. Viewers watch on{' '}
        <a href={`/c/${user}`}>your channel</a>.
      </p>
      {key ? (
        <dl class="key">
          <dt>Server</dt>
          <dd>
            <code>{key.rtmp_url}</code>
          </dd>
          <dt>Stream key</dt>
          <dd>
            <code>{key.stream_key}</code>
          </dd>
        </dl>
      ) : (
        <button type="button" onClick={() => run(api.streamKey)}>
          Reveal stream key
        </button>
      )}
      {key && (
        <div class="row">
          <button type="button" onClick={() => setKey(null)}>
            Hide stream key
          </button>
          <button type="button" onClick={() => confirm('The old key stops working at once. Rotate?') && run(api.rotateStreamKey)}>
            Rotate stream key
          </button>
        </div>
      )}
      {error && <p role="alert">{error}</p>}
    </section>
  );
}
