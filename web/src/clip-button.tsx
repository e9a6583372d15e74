import { api, type ClipRequest } from './api';
import { useAction } from './dashboard/hooks';
import { Alert } from './dashboard/ui';
import { navigate } from './router';

/** Clips are this long unless the recording is shorter. */
export const CLIP_SECS = 30;

/**
 * 30 s around `at` (15 s before it), kept inside a recording of `total` seconds when
 * that is known (a recording still growing has no end yet).
 */
export function clipRange(at: number, total: number | null): { start_secs: number; duration_secs: number } {
  let start = Math.max(0, at - CLIP_SECS / 2);
  let length = CLIP_SECS;
  if (total !== null && Number.isFinite(total)) {
    length = Math.min(CLIP_SECS, total);
    start = Math.max(0, Math.min(start, total - length));
  }
  return { start_secs: Math.round(start * 10) / 10, duration_secs: Math.floor(length * 10) / 10 };
}

/** "Clip": asks the server for a clip of `request()` and opens its page; says why it could not. */
export function ClipButton({ request, description }: { request: () => ClipRequest; description: string }) {
  const action = useAction();
  const clip = () =>
    action.run(async () => {
      const made = await api.createClip(request());
      navigate(`/clips/${made.id}`);
    });
  return (
    <div class="clip-control">
      <button type="button" disabled={action.busy} onClick={clip} aria-describedby="clip-what">
        {action.busy ? 'Clipping…' : 'Clip'}
      </button>
      <span id="clip-what" class="muted">
        {description}
      </span>
      <Alert error={action.error} context="Could not clip" />
    </div>
  );
}
