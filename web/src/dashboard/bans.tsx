// Bans (until lifted, with a reason) and timeouts (a duration), by username; lifting them.
import { useState } from 'preact/hooks';
import { dashboardApi, findUser, type Ban } from './api';
import { usePaged } from '../paged';
import { useAction } from './hooks';
import { Alert, DateTime, ListState, LoadMore, UserName } from './ui';

/** Seconds of each timeout on offer; 0 is a ban until lifted. */
const LENGTHS: [number, string][] = [
  [0, 'Ban until lifted'],
  [60, 'Time out for 1 minute'],
  [600, 'Time out for 10 minutes'],
  [3600, 'Time out for 1 hour'],
  [86400, 'Time out for 1 day'],
  [604800, 'Time out for 1 week'],
];

export function Bans({ channelId, onChange }: { channelId: string; onChange: () => void }) {
  const list = usePaged(dashboardApi.bans(channelId), channelId);
  const action = useAction();
  const [length, setLength] = useState(0);
  const changed = () => {
    list.reload();
    onChange();
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    const formElement = event.currentTarget as HTMLFormElement;
    const form = new FormData(formElement);
    const username = String(form.get('username') ?? '').trim();
    const reason = String(form.get('reason') ?? '').trim();
    const what = length ? `Time ${username} out of your chat?` : `Ban ${username} from your chat?`;
    if (!confirm(what)) return;
    const done = await action.run(async () => {
      const user = await findUser(username);
      await dashboardApi.ban(
        channelId,
        length ? { user_id: user.id, duration_secs: length } : { user_id: user.id, reason: reason || undefined },
      );
    });
    if (done) {
      formElement.reset();
      setLength(0);
      changed();
    }
  };
  const lift = async (ban: Ban) => {
    if (await action.run(() => dashboardApi.unban(channelId, ban.user.id))) changed();
  };

  return (
    <section aria-labelledby="bans-heading" class="dash-subsection">
      <h3 id="bans-heading">Bans and timeouts</h3>
      <ListState list={list} empty="Nobody is banned or timed out." what="the bans" />
      {list.items && list.items.length > 0 && (
        <ul class="dash-list" aria-label="Bans and timeouts">
          {list.items.map((ban) => (
            <li key={ban.user.id}>
              <span>
                <UserName user={ban.user} />{' '}
                {ban.until ? (
                  <>
                    timed out until <DateTime value={ban.until} />
                  </>
                ) : (
                  'banned'
                )}
                {ban.reason && <span class="muted"> · {ban.reason}</span>}
              </span>
              <button type="button" class="secondary" onClick={() => lift(ban)}>
                {ban.until ? 'Lift timeout' : 'Unban'} <span class="visually-hidden">{ban.user.username}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
      <LoadMore list={list} />
      <form onSubmit={submit} class="narrow">
        <label for="ban-username">Username</label>
        <input id="ban-username" name="username" required maxLength={25} autoComplete="off" />
        <label for="ban-length">Length</label>
        <select id="ban-length" value={String(length)} onChange={(e) => setLength(Number((e.currentTarget as HTMLSelectElement).value))}>
          {LENGTHS.map(([secs, label]) => (
            <option key={secs} value={String(secs)}>
              {label}
            </option>
          ))}
        </select>
        <label for="ban-reason">Reason (optional, bans only)</label>
        <input id="ban-reason" name="reason" maxLength={200} disabled={length > 0} />
        <div class="row">
          <button type="submit" disabled={action.busy}>
            {length ? 'Time out' : 'Ban'}
          </button>
        </div>
      </form>
      <Alert error={action.error} />
    </section>
  );
}
