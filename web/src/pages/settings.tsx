import { useEffect, useState } from 'preact/hooks';
import { api, type Profile } from '../api';
import { AvatarSettings } from '../settings/avatar';
import { NotificationPreferences } from '../settings/notifications';
import { OutcomeMessage, type Outcome } from '../settings/outcome';
import { SignInFirst } from './dashboard';

function ProfileForm({ profile, onChange }: { profile: Profile; onChange: (profile: Profile) => void }) {
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const save = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const name = String(form.get('display_name') ?? '').trim();
    try {
      onChange(await api.updateMe({ display_name: name || null, bio: String(form.get('bio') ?? '') }));
      setOutcome({ ok: true, text: 'Profile saved.' });
    } catch (e) {
      setOutcome({ ok: false, text: (e as Error).message });
    }
  };
  return (
    <section aria-labelledby="profile-heading">
      <h2 id="profile-heading">Profile</h2>
      <form onSubmit={save}>
        <label for="display_name">Display name</label>
        <input id="display_name" name="display_name" maxLength={50} value={profile.display_name ?? ''} />
        <label for="bio">Bio</label>
        <textarea id="bio" name="bio" rows={4} maxLength={500} value={profile.bio} />
        <button type="submit">Save profile</button>
      </form>
      <OutcomeMessage outcome={outcome} />
    </section>
  );
}

export function Settings({ user }: { user: string | null }) {
  const [profile, setProfile] = useState<Profile | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (user) api.me().then(setProfile, (e: Error) => setError(e.message));
  }, [user]);
  if (!user) return <SignInFirst what="Settings" />;
  return (
    <div class="narrow settings">
      <h1>Settings</h1>
      {error && <p role="alert">Could not load your profile: {error}</p>}
      {profile && (
        <>
          <ProfileForm profile={profile} onChange={setProfile} />
          <AvatarSettings profile={profile} onChange={setProfile} />
        </>
      )}
      <NotificationPreferences />
    </div>
  );
}
