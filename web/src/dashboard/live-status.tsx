// Whether the creator is on air, polled every few seconds, and ending the broadcast.
import { useEffect, useState } from 'preact/hooks';
import { api, type Stream } from '../api';
import { dashboardApi } from './api';
import { useAction } from './hooks';
import { Alert, plural } from './ui';

const REFRESH_MS = 4_000;

export interface LiveState {
  /** The active broadcast (live or interrupted); null when not live; undefined while loading. */
  stream: Stream | null | undefined;
  error: unknown;
  refresh: () => void;
}

/** The caller's active broadcast, through their profile's `live_stream_id`. */
export function useLiveStream(): LiveState {
  const [stream, setStream] = useState<Stream | null | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [refreshes, setRefreshes] = useState(0);
  useEffect(() => {
    let current = true;
    const load = async () => {
      try {
        const me = await api.me();
        const active = me.live_stream_id ? await api.stream(me.live_stream_id) : null;
        if (!current) return;
        setStream(active && active.status !== 'ended' ? active : null);
        setError(null);
      } catch (e) {
        if (current) setError(e);
      }
    };
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      current = false;
      clearInterval(timer);
    };
  }, [refreshes]);
  return { stream, error, refresh: () => setRefreshes((n) => n + 1) };
}

/** "1 h 05 min" since `started`, to the minute (the status refreshes every few seconds). */
function uptime(started: string, now: number): string {
  const minutes = Math.max(0, Math.floor((now - Date.parse(started)) / 60_000));
  if (minutes < 1) return 'under a minute';
  const hours = Math.floor(minutes / 60);
  return hours ? `${hours} h ${String(minutes % 60).padStart(2, '0')} min` : `${minutes} min`;
}

function statusText(stream: Stream | null): string {
  if (!stream) return 'Not live';
  return stream.status === 'live' ? 'Live' : 'Interrupted: waiting for the encoder to reconnect';
}

export function LiveStatus({ channelId, live }: { channelId: string; live: LiveState }) {
  const end = useAction();
  const { stream } = live;
  const endStream = async () => {
    if (!confirm('End the broadcast now? Viewers will see your channel as offline.')) return;
    if (await end.run(dashboardApi.endStream)) live.refresh();
  };
  return (
    <section aria-labelledby="live-status-heading" class="dash-section">
      <h2 id="live-status-heading">Live status</h2>
      {stream === undefined ? (
        live.error ? <Alert error={live.error} /> : <p>Loading…</p>
      ) : (
        <>
          <p role="status" class={`live-badge ${stream ? stream.status : 'none'}`}>
            {statusText(stream)}
          </p>
          {stream && (
            <dl class="facts">
              <dt>Viewers</dt>
              <dd>{plural(stream.viewer_count, 'viewer', 'viewers')}</dd>
              <dt>Uptime</dt>
              <dd>{uptime(stream.started_at, Date.now())}</dd>
            </dl>
          )}
          <div class="row">
            <a href={`/c/${channelId}`}>Open the channel page</a>
            {stream && (
              <button type="button" class="danger" disabled={end.busy} onClick={endStream}>
                End stream
              </button>
            )}
          </div>
          <Alert error={end.error ?? (stream !== undefined && live.error)} />
        </>
      )}
    </section>
  );
}
