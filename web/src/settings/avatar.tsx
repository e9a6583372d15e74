// Settings → Avatar: upload an image (the server re-encodes it to 256×256) or remove it.
import { useState } from 'preact/hooks';
import { authorizedFetch, call, errorOf, type Profile } from '../api';
import { OutcomeMessage, type Outcome } from './outcome';

const TYPES = ['image/png', 'image/jpeg', 'image/webp'];
const MAX_BYTES = 2 * 1024 * 1024;

async function uploadAvatar(file: File): Promise<Profile> {
  const response = await authorizedFetch('/users/me/avatar', {
    method: 'PUT',
    headers: { 'content-type': file.type },
    body: file,
  });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/** Why the server would refuse this file, said before sending it; null when it looks fine. */
function problemWith(file: File): string | null {
  if (!TYPES.includes(file.type)) return 'Choose a PNG, JPEG or WebP image.';
  if (file.size > MAX_BYTES) return 'The image is larger than 2 MB: choose a smaller one.';
  return null;
}

/** A data: URL of the chosen file (the page's CSP allows data: images, not blob: ones). */
function readAsDataUrl(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export function AvatarSettings({ profile, onChange }: { profile: Profile; onChange: (profile: Profile) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [preview, setPreview] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | null>(null);

  const pick = async (event: Event) => {
    const input = event.currentTarget as HTMLInputElement;
    const chosen = input.files?.[0] ?? null;
    setFile(null);
    setPreview(null);
    setOutcome(null);
    if (!chosen) return;
    const problem = problemWith(chosen);
    if (problem) {
      setOutcome({ ok: false, text: problem });
      return;
    }
    setFile(chosen);
    setPreview(await readAsDataUrl(chosen).catch(() => null));
  };
  const run = async (action: () => Promise<Profile>, done: string) => {
    setBusy(true);
    try {
      onChange(await action());
      setFile(null);
      setPreview(null);
      setOutcome({ ok: true, text: done });
      return true;
    } catch (e) {
      setOutcome({ ok: false, text: (e as Error).message });
      return false;
    } finally {
      setBusy(false);
    }
  };
  const upload = async (event: Event) => {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    if (file && (await run(() => uploadAvatar(file), 'Avatar updated.'))) form.reset();
  };

  return (
    <section aria-labelledby="avatar-heading">
      <h2 id="avatar-heading">Avatar</h2>
      {profile.avatar_url ? (
        <img class="avatar-image" src={profile.avatar_url} alt="Your avatar" width={96} height={96} />
      ) : (
        <p>You have no avatar yet.</p>
      )}
      <form onSubmit={upload}>
        <label for="avatar-file">New avatar image (PNG, JPEG or WebP, up to 2 MB)</label>
        <input id="avatar-file" type="file" accept={TYPES.join(',')} onChange={pick} />
        {preview && <img class="avatar-image" src={preview} alt="Preview of the new avatar" width={96} height={96} />}
        <div class="row">
          <button type="submit" disabled={!file || busy}>
            Upload avatar
          </button>
          {profile.avatar_url && (
            <button
              type="button"
              disabled={busy}
              onClick={() => run(() => call<Profile>('DELETE', '/users/me/avatar'), 'Avatar removed.')}
            >
              Remove avatar
            </button>
          )}
        </div>
      </form>
      <OutcomeMessage outcome={outcome} />
    </section>
  );
}
