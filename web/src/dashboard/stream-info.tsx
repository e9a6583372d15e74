// Title and category. The server keeps them per broadcast: they are edited while one is
// active, and a broadcast started here gets them from the start (OBS then attaches to it).
import { useState } from 'preact/hooks';
import type { Stream } from '../api';
import { dashboardApi } from './api';
import { useAction } from './hooks';
import { Alert, describedBy, FieldError } from './ui';

const FIELDS = ['title', 'category'];

export function StreamInfo({ stream, onChange }: { stream: Stream | null; onChange: () => void }) {
  const save = useAction();
  const [saved, setSaved] = useState<string | null>(null);
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const title = String(form.get('title') ?? '');
    const category = String(form.get('category') ?? '').trim() || null;
    setSaved(null);
    const ok = await save.run(() =>
      stream ? dashboardApi.updateStream(stream.id, { title, category }) : dashboardApi.startStream(title, category),
    );
    if (ok) {
      setSaved(stream ? 'Stream info saved.' : 'You are live.');
      onChange();
    }
  };
  return (
    <section aria-labelledby="stream-info-heading" class="dash-section">
      <h2 id="stream-info-heading">Stream info</h2>
      <p class="muted">
        {stream
          ? 'Viewers see the new title and category at once.'
          : 'Title and category belong to a broadcast, so they can only be changed while you are live. Start a broadcast here with them and then publish from OBS; or publish first (OBS reuses your last title) and edit them once live.'}
      </p>
      {/* Keyed by broadcast: polling does not overwrite what is being typed. */}
      <form key={stream?.id ?? 'none'} onSubmit={submit} class="narrow">
        <label for="stream-title">Title</label>
        <input
          id="stream-title"
          name="title"
          required
          maxLength={140}
          defaultValue={stream?.title ?? ''}
          {...describedBy(save.error, 'title', 'stream-title')}
        />
        <FieldError error={save.error} field="title" id="stream-title" />
        <label for="stream-category">Category (optional)</label>
        <input
          id="stream-category"
          name="category"
          maxLength={50}
          defaultValue={stream?.category ?? ''}
          {...describedBy(save.error, 'category', 'stream-category')}
        />
        <FieldError error={save.error} field="category" id="stream-category" />
        <div class="row">
          <button type="submit" disabled={save.busy}>
            {stream ? 'Save stream info' : 'Go live'}
          </button>
        </div>
        <Alert error={save.error} fields={FIELDS} />
        {saved && <p role="status">{saved}</p>}
      </form>
    </section>
  );
}
