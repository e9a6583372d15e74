// What the owner and moderators did, newest first, a page at a time.
import { useEffect, useState } from 'preact/hooks';
import { api, displayName } from '../api';
import { dashboardApi, type ModerationEntry } from './api';
import { usePaged } from '../paged';
import { DateTime, ListState, LoadMore } from './ui';

/** The log names users by id: each name is fetched once per page load. */
const names = new Map<string, Promise<string>>();

function nameOf(id: string): Promise<string> {
  let name = names.get(id);
  if (!name) {
    name = api.user(id).then(
      (user) => (displayName(user) === user.username ? user.username : `${displayName(user)} (@${user.username})`),
      () => 'a deleted user',
    );
    names.set(id, name);
  }
  return name;
}

function useName(id: string | null): string {
  const [name, setName] = useState(id ? '…' : '');
  useEffect(() => {
    let current = true;
    if (id) nameOf(id).then((n) => current && setName(n));
    return () => {
      current = false;
    };
  }, [id]);
  return name;
}

/** One sentence per action, e.g. "Ann (@ann) banned Bob (@bob)". */
function describe(action: string, moderator: string, target: string): string {
  switch (action) {
    case 'ban':
      return `${moderator} banned ${target}`;
    case 'unban':
      return `${moderator} unbanned ${target}`;
    case 'timeout':
      return `${moderator} timed out ${target}`;
    case 'delete':
      return `${moderator} deleted a message`;
    case 'settings':
      return `${moderator} changed the chat settings`;
    case 'add_moderator':
      return `${moderator} added ${target} as a moderator`;
    case 'remove_moderator':
      return `${moderator} removed ${target} as a moderator`;
    default:
      return `${moderator}: ${action} ${target}`;
  }
}

function Entry({ entry }: { entry: ModerationEntry }) {
  const moderator = useName(entry.moderator_id);
  const target = useName(entry.target_user_id);
  return (
    <li>
      <DateTime value={entry.created_at} /> · {describe(entry.action, moderator, target)}
      {entry.details && <span class="muted"> ({entry.details})</span>}
    </li>
  );
}

export function ModerationLog({ channelId, version }: { channelId: string; version: number }) {
  const list = usePaged(dashboardApi.moderationLog(channelId), `${channelId}/${version}`);
  return (
    <section aria-labelledby="moderation-log-heading" class="dash-subsection">
      <h3 id="moderation-log-heading">Moderation log</h3>
      <ListState list={list} empty="No moderation actions yet." what="the moderation log" />
      {list.items && list.items.length > 0 && (
        <ol class="dash-list log" aria-label="Moderation log">
          {list.items.map((entry) => (
            <Entry key={entry.id} entry={entry} />
          ))}
        </ol>
      )}
      <LoadMore list={list} />
    </section>
  );
}
