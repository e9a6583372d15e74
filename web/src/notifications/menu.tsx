// The header's notifications menu: a button with the unread badge that discloses the inbox.
import { useEffect, useRef, useState } from 'preact/hooks';
import { displayName } from '../api';
import { notifications, type Notification } from './client';
import { useLiveFeed } from './feed';

const PANEL = 'notifications-panel';

function when(at: string): string {
  return new Date(at).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function Item({ item, onOpen }: { item: Notification; onOpen: (item: Notification) => void }) {
  const unread = item.read_at === null;
  return (
    <li class={unread ? 'note unread' : 'note'}>
      <a href={`/c/${encodeURIComponent(item.creator.username)}`} onClick={() => onOpen(item)}>
        <span class="note-who">
          {displayName(item.creator)} {item.stream_status === 'live' ? 'is live' : 'went live'}
        </span>
        <span class="note-title">{item.title}</span>
        <time dateTime={item.created_at}>{when(item.created_at)}</time>
        {unread && <span class="visually-hidden">, unread</span>}
      </a>
    </li>
  );
}

export function NotificationsMenu({ user }: { user: string }) {
  const [open, setOpen] = useState(false);
  const [items, setItems] = useState<Notification[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [unread, setUnread] = useLiveFeed(user, (arrived) =>
    setItems((list) => list && [arrived, ...list.filter((item) => item.stream_id !== arrived.stream_id)]),
  );
  const wrapper = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  const panel = useRef<HTMLDivElement>(null);

  const load = async (from: string | null) => {
    try {
      const page = await notifications.inbox(from);
      setItems((list) => (from && list ? [...list, ...page.data] : page.data));
      setCursor(page.pagination.has_more ? page.pagination.next_cursor : null);
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  };

  // Opening reads the inbox afresh and moves focus into the panel.
  useEffect(() => {
    if (!open) return;
    setItems(null);
    load(null);
    panel.current?.focus();
    const outside = (event: MouseEvent) => {
      if (!wrapper.current?.contains(event.target as Node)) setOpen(false);
    };
    document.addEventListener('click', outside);
    return () => document.removeEventListener('click', outside);
  }, [open]);

  const close = (refocus: boolean) => {
    setOpen(false);
    if (refocus) button.current?.focus();
  };
  const markRead = (item: Notification) => {
    close(false);
    if (item.read_at !== null) return;
    setUnread((count) => Math.max(0, count - 1));
    notifications.markRead(item.stream_id).catch(() => {});
  };
  const markAllRead = async () => {
    try {
      await notifications.markAllRead();
      const now = new Date().toISOString();
      setItems((list) => list && list.map((item) => ({ ...item, read_at: item.read_at ?? now })));
      setUnread(0);
    } catch (e) {
      setError((e as Error).message);
    }
  };

  return (
    <div
      class="notifications"
      ref={wrapper}
      onKeyDown={(event) => {
        if (event.key === 'Escape' && open) {
          event.stopPropagation();
          close(true);
        }
      }}
      onFocusOut={(event) => {
        // Tabbing past the panel closes it, as leaving any disclosure menu does.
        const next = event.relatedTarget as Node | null;
        if (open && next && !wrapper.current?.contains(next)) setOpen(false);
      }}
    >
      {/* Named in full: the badge's number alone would read as "Notifications 2". */}
      <button
        type="button"
        ref={button}
        aria-label={unread > 0 ? `Notifications, ${unread} unread` : 'Notifications'}
        aria-expanded={open}
        aria-controls={PANEL}
        onClick={() => setOpen(!open)}
      >
        Notifications
        {unread > 0 && (
          <span class="unread-badge" aria-hidden="true">
            {unread > 99 ? '99+' : unread}
          </span>
        )}
      </button>
      <div
        id={PANEL}
        class="notifications-panel"
        role="region"
        aria-labelledby="notifications-heading"
        ref={panel}
        tabIndex={-1}
        hidden={!open}
      >
        <div class="row notifications-head">
          <h2 id="notifications-heading">Notifications</h2>
          <button type="button" onClick={markAllRead} disabled={unread === 0}>
            Mark all read
          </button>
        </div>
        {error && <p role="alert">Could not load your notifications: {error}</p>}
        {items === null && !error && <p>Loading…</p>}
        {items?.length === 0 && <p>Nothing yet. Follow channels to hear when they go live.</p>}
        {items && items.length > 0 && (
          <ul class="notes">
            {items.map((item) => (
              <Item key={item.stream_id} item={item} onOpen={markRead} />
            ))}
          </ul>
        )}
        {cursor && (
          <button type="button" onClick={() => load(cursor)}>
            Show older notifications
          </button>
        )}
      </div>
    </div>
  );
}
