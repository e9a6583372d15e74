// The channel's moderators: appointed by username, removed from the list.
import { useState } from 'preact/hooks';
import { dashboardApi, findUser } from './api';
import { usePaged } from '../paged';
import { useAction } from './hooks';
import { Alert, ListState, LoadMore, UserName } from './ui';

export function Moderators({ channelId, onChange }: { channelId: string; onChange: () => void }) {
  const list = usePaged(dashboardApi.moderators(channelId), channelId);
  const action = useAction();
  const [username, setUsername] = useState('');
  const changed = () => {
    list.reload();
    onChange();
  };

  const add = async (event: Event) => {
    event.preventDefault();
    const added = await action.run(async () => {
      const user = await findUser(username);
      await dashboardApi.addModerator(channelId, user.id);
    });
    if (added) {
      setUsername('');
      changed();
    }
  };
  const remove = async (id: string, name: string) => {
    if (!confirm(`Remove ${name} as a moderator?`)) return;
    if (await action.run(() => dashboardApi.removeModerator(channelId, id))) changed();
  };

  return (
    <section aria-labelledby="moderators-heading" class="dash-subsection">
      <h3 id="moderators-heading">Moderators</h3>
      <p class="muted">Moderators can delete messages, time out and ban users, and change the chat settings.</p>
      <ListState list={list} empty="No moderators yet." what="the moderators" />
      {list.items && list.items.length > 0 && (
        <ul class="dash-list" aria-label="Moderators">
          {list.items.map((user) => (
            <li key={user.id}>
              <UserName user={user} />
              <button type="button" class="secondary" onClick={() => remove(user.id, user.username)}>
                Remove <span class="visually-hidden">{user.username} as moderator</span>
              </button>
            </li>
          ))}
        </ul>
      )}
      <LoadMore list={list} />
      <form onSubmit={add} class="narrow">
        <label for="moderator-username">Username of the new moderator</label>
        <div class="row">
          <input
            id="moderator-username"
            required
            maxLength={25}
            autoComplete="off"
            value={username}
            onInput={(e) => setUsername((e.currentTarget as HTMLInputElement).value)}
          />
          <button type="submit" disabled={action.busy}>
            Add moderator
          </button>
        </div>
      </form>
      <Alert error={action.error} />
    </section>
  );
}
