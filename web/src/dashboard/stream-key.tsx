// What to paste into OBS: the server URL and the key, revealed only on demand.
import { useState } from 'preact/hooks';
import { api, type StreamKey as Key } from '../api';
import { useAction } from './hooks';
import { Alert } from './ui';

export function StreamKey({ channelId }: { channelId: string }) {
  const [key, setKey] = useState<Key | null>(null);
  const action = useAction();
  const run = (fetchKey: () => Promise<Key>) => action.run(async () => setKey(await fetchKey()));
  const rotate = () => {
    if (confirm('The old key stops working at once, and a broadcast streaming with it ends. Rotate?')) run(api.rotateStreamKey);
  };
  return (
    <section aria-labelledby="obs-heading" class="dash-section">
      <h2 id="obs-heading">Go live from OBS</h2>
      <p>
        In OBS: Settings → Stream → Service “Custom”, then paste the server and the stream key. Viewers watch on{' '}
        <a href={`/c/${channelId}`}>your channel</a>.
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
          {key.srt_url && (
            <>
              <dt>Or SRT (Server, with the stream key left empty)</dt>
              <dd>
                <code>{key.srt_url}</code>
              </dd>
            </>
          )}
        </dl>
      ) : (
        <button type="button" disabled={action.busy} onClick={() => run(api.streamKey)}>
          Reveal stream key
        </button>
      )}
      {key && (
        <div class="row">
          <button type="button" class="secondary" onClick={() => setKey(null)}>
            Hide stream key
          </button>
          <button type="button" class="danger" disabled={action.busy} onClick={rotate}>
            Rotate stream key
          </button>
        </div>
      )}
      <Alert error={action.error} />
      <h3>Chat on the stream</h3>
      <p>
        Add a Browser source in OBS with this address: your chat, on a transparent background, over the video.
      </p>
      <label for="overlay-url">Chat overlay address</label>
      <input id="overlay-url" readOnly value={`${location.origin}/overlay/${channelId}`} onFocus={(e) => e.currentTarget.select()} />
    </section>
  );
}
