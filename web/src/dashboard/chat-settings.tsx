// Slow mode and followers-only: applied to every chat connection at once.
import { useEffect, useState } from 'preact/hooks';
import { dashboardApi, type ChatSettings as Settings } from './api';
import { useAction } from './hooks';
import { Alert, describedBy, FieldError } from './ui';

export function ChatSettings({ channelId, onChange }: { channelId: string; onChange: () => void }) {
  const [settings, setSettings] = useState<Settings | null>(null);
  const load = useAction();
  const save = useAction();
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    load.run(async () => setSettings(await dashboardApi.chatSettings(channelId)));
  }, [channelId]);

  const submit = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const next: Settings = {
      slow_mode_secs: Number(form.get('slow_mode_secs') || 0),
      followers_only_minutes: form.get('followers_only') ? Number(form.get('followers_only_minutes') || 0) : null,
    };
    setSaved(false);
    if (await save.run(() => dashboardApi.putChatSettings(channelId, next))) {
      setSettings(next);
      setSaved(true);
      onChange();
    }
  };

  return (
    <section aria-labelledby="chat-settings-heading" class="dash-subsection">
      <h3 id="chat-settings-heading">Chat settings</h3>
      {settings ? (
        <form onSubmit={submit} class="narrow">
          <label for="slow-mode">Slow mode (seconds between messages, 0 = off)</label>
          <input
            id="slow-mode"
            name="slow_mode_secs"
            type="number"
            min={0}
            max={86400}
            defaultValue={String(settings.slow_mode_secs)}
            {...describedBy(save.error, 'settings', 'slow-mode')}
          />
          <FollowersOnly settings={settings} />
          <FieldError error={save.error} field="settings" id="slow-mode" />
          <div class="row">
            <button type="submit" disabled={save.busy}>
              Save chat settings
            </button>
          </div>
          <Alert error={save.error} fields={['settings']} />
          {saved && <p role="status">Chat settings saved.</p>}
        </form>
      ) : (
        <Alert error={load.error} />
      )}
    </section>
  );
}

/** A checkbox, and the minimum follow age it needs. */
function FollowersOnly({ settings }: { settings: Settings }) {
  const [on, setOn] = useState(settings.followers_only_minutes !== null);
  return (
    <>
      <label class="check">
        <input
          type="checkbox"
          name="followers_only"
          checked={on}
          onChange={(e) => setOn((e.currentTarget as HTMLInputElement).checked)}
        />
        Followers-only chat
      </label>
      <label for="followers-minutes">Followed for at least (minutes)</label>
      <input
        id="followers-minutes"
        name="followers_only_minutes"
        type="number"
        min={0}
        max={129600}
        disabled={!on}
        defaultValue={String(settings.followers_only_minutes ?? 0)}
      />
    </>
  );
}
