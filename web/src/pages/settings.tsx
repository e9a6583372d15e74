import { useEffect, useState } from 'preact/hooks';
import { api, type Profile } from '../api';
import { SignInFirst } from './dashboard';

export function Settings({ user }: { user: string | null }) {
  const [profile, setProfile] = useState<Profile | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  useEffect(() => {
    if (user) api.me().then(setProfile, (e: Error) => setStatus(e.message));
  }, [user]);
  if (!user) return <SignInFirst what="Settings" />;
  const save = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const name = String(form.get('display_name') ?? '').trim();
    try {
      setProfile(await api.updateMe({ display_name: name || null, bio: String(form.get('bio') ?? '') }));
      setStatus('Profile saved.');
    } catch (e) {
      setStatus((e as Error).message);
    }
  };
  return (
    <section class="narrow">
      <h1>Settings</h1>
      {profile && (
        <form onSubmit={save}>
          <h2>Profile</h2>
          <label for="display_name">Display name</label>
          <input id="display_name" name="display_name" maxLength={50} value={profile.display_name ?? ''} />
          <label for="bio">Bio</label>
          <textarea id="bio" name="bio" rows={4} maxLength={500} value={profile.bio} />
          <button type="submit">Save profile</button>
        </form>
      )}
      {status && <p role="status">{status}</p>}
    </section>
  );
}
