// Webhooks on the creator's own channel: one per event, signed with a secret made here
// and shown once (the server never returns it).
import { useState } from 'preact/hooks';
import { dashboardApi, WEBHOOK_EVENTS, type Webhook, type WebhookEvent } from './api';
import { usePaged } from '../paged';
import { useAction } from './hooks';
import { Alert, DateTime, describedBy, FieldError, ListState, LoadMore } from './ui';

const EVENT_LABELS: Record<WebhookEvent, string> = {
  'stream.online': 'Stream goes live (stream.online)',
  'stream.offline': 'Stream ends (stream.offline)',
};

/** 32 random bytes as hex: within the server's 10–100 printable characters. */
function newSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function Webhooks({ channelId }: { channelId: string }) {
  const list = usePaged(dashboardApi.webhooks(), channelId);
  const action = useAction();
  const [secret, setSecret] = useState<string | null>(null);

  const create = async (event: Event) => {
    event.preventDefault();
    const formElement = event.currentTarget as HTMLFormElement;
    const form = new FormData(formElement);
    const callbackUrl = String(form.get('callback_url') ?? '').trim();
    const events = WEBHOOK_EVENTS.filter((e) => form.get(e));
    const signing = newSecret();
    setSecret(null);
    const created = await action.run(async () => {
      if (events.length === 0) throw new Error('Choose at least one event.');
      for (const hookEvent of events) {
        await dashboardApi.createWebhook({ channel_id: channelId, event: hookEvent, callback_url: callbackUrl, secret: signing });
      }
    });
    // A partial failure may still have created some: the list shows what exists.
    list.reload();
    if (created) {
      formElement.reset();
      setSecret(signing);
    }
  };
  const remove = async (hook: Webhook) => {
    if (!confirm(`Delete the ${hook.event} webhook to ${hook.callback_url}?`)) return;
    if (await action.run(() => dashboardApi.deleteWebhook(hook.id))) list.reload();
  };

  return (
    <section aria-labelledby="webhooks-heading" class="dash-section">
      <h2 id="webhooks-heading">Webhooks</h2>
      <p class="muted">
        OnAir POSTs to your URL when your stream goes live or ends. Each delivery carries an{' '}
        <code>OnAir-Message-Signature</code> header: an HMAC-SHA256 made with the webhook's signing secret.
      </p>
      <ListState list={list} empty="No webhooks yet." what="the webhooks" />
      {list.items && list.items.length > 0 && (
        <ul class="dash-list" aria-label="Webhooks">
          {list.items.map((hook) => (
            <li key={hook.id}>
              <span>
                <span class="url">{hook.callback_url}</span> · {hook.event}
                {hook.channel_id !== channelId && ' · another channel'}
                {!hook.enabled && ' · disabled after repeated failures'}
                <span class="muted">
                  {' '}
                  · created <DateTime value={hook.created_at} />
                </span>
              </span>
              <button type="button" class="secondary" onClick={() => remove(hook)}>
                Delete <span class="visually-hidden">the {hook.event} webhook to {hook.callback_url}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
      <LoadMore list={list} />
      {secret && (
        <div class="secret" role="status">
          <p>
            Webhook created. Its signing secret is shown only now; it will not be shown again, so copy it into your
            receiver:
          </p>
          <code>{secret}</code>
          <button type="button" class="secondary" onClick={() => setSecret(null)}>
            I have copied it
          </button>
        </div>
      )}
      <form onSubmit={create} class="narrow">
        <label for="webhook-url">Callback URL (https)</label>
        <input
          id="webhook-url"
          name="callback_url"
          type="url"
          required
          maxLength={2048}
          placeholder="https://example.com/onair"
          {...describedBy(action.error, 'callback_url', 'webhook-url')}
        />
        <FieldError error={action.error} field="callback_url" id="webhook-url" />
        <fieldset>
          <legend>Events</legend>
          {WEBHOOK_EVENTS.map((hookEvent) => (
            <label class="check" key={hookEvent}>
              <input type="checkbox" name={hookEvent} defaultChecked />
              {EVENT_LABELS[hookEvent]}
            </label>
          ))}
        </fieldset>
        <div class="row">
          <button type="submit" disabled={action.busy}>
            Create webhook
          </button>
        </div>
      </form>
      <Alert error={action.error} fields={['callback_url']} />
    </section>
  );
}
