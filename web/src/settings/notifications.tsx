// Settings → Notifications: the account's push preference and this browser's subscription.
import { useEffect, useState } from 'preact/hooks';
import { notifications } from '../notifications/client';
import { pushState, turnOffPush, turnOnPush, type PushState } from '../notifications/push';
import { OutcomeMessage, type Outcome } from './outcome';

const BROWSER_STATE: Record<PushState, string> = {
  unsupported: 'This browser does not support push notifications.',
  blocked: 'Notifications are blocked for this site. Allow them in your browser’s site settings to get push notifications here.',
  off: 'Push notifications are off in this browser.',
  on: 'Push notifications are on in this browser.',
};

function BrowserPush({ onTurnedOn }: { onTurnedOn: () => void }) {
  const [state, setState] = useState<PushState | null>(null);
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  useEffect(() => {
    pushState().then(setState, (e: Error) => setOutcome({ ok: false, text: e.message }));
  }, []);
  const change = async (action: () => Promise<void>, done: string) => {
    setBusy(true);
    setOutcome(null);
    try {
      await action();
      setOutcome({ ok: true, text: done });
    } catch (e) {
      setOutcome({ ok: false, text: (e as Error).message });
    }
    setState(await pushState().catch(() => null));
    setBusy(false);
  };
  return (
    <>
      <h3>This browser</h3>
      <p>{state ? BROWSER_STATE[state] : 'Checking this browser…'}</p>
      {state === 'on' && (
        <button type="button" disabled={busy} onClick={() => change(turnOffPush, 'Push notifications turned off in this browser.')}>
          Turn off push in this browser
        </button>
      )}
      {(state === 'off' || state === 'blocked') && (
        <button
          type="button"
          disabled={busy}
          onClick={() =>
            change(async () => {
              await turnOnPush();
              onTurnedOn();
            }, 'Push notifications turned on in this browser.')
          }
        >
          Turn on push in this browser
        </button>
      )}
      <OutcomeMessage outcome={outcome} />
    </>
  );
}

export function NotificationPreferences() {
  const [pushEnabled, setPushEnabled] = useState<boolean | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  useEffect(() => {
    notifications.settings().then(
      (settings) => setPushEnabled(settings.push_enabled),
      (e: Error) => setOutcome({ ok: false, text: e.message }),
    );
  }, []);
  const save = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    try {
      const saved = await notifications.updateSettings({ push_enabled: form.get('push_enabled') === 'on' });
      setPushEnabled(saved.push_enabled);
      setOutcome({ ok: true, text: 'Notification settings saved.' });
    } catch (e) {
      setOutcome({ ok: false, text: (e as Error).message });
    }
  };
  // Turning push on in a browser means the account wants pushes too.
  const pushTurnedOn = async () => {
    if (pushEnabled === false) setPushEnabled((await notifications.updateSettings({ push_enabled: true })).push_enabled);
  };
  return (
    <section aria-labelledby="notifications-settings">
      <h2 id="notifications-settings">Notifications</h2>
      <p>Your notifications menu always lists the channels you follow going live.</p>
      {pushEnabled !== null && (
        <form onSubmit={save}>
          <label class="checkbox-label">
            <input type="checkbox" name="push_enabled" checked={pushEnabled} />
            Also send them to my browsers as push notifications
          </label>
          <button type="submit">Save notification settings</button>
        </form>
      )}
      <OutcomeMessage outcome={outcome} />
      <BrowserPush onTurnedOn={pushTurnedOn} />
    </section>
  );
}
