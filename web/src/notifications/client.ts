// The notification API: the inbox, read state, settings and Web Push subscriptions.
import { authorizedFetch, call, errorOf, pageQuery, type Page, type UserSummary } from '../api';

/** A go-live notification; the broadcast's id is also the notification's. */
export interface Notification {
  stream_id: string;
  title: string;
  stream_status: 'live' | 'offline' | 'ended';
  creator: UserSummary;
  created_at: string;
  read_at: string | null;
}

export interface NotificationSettings {
  push_enabled: boolean;
}

export const notifications = {
  inbox: (cursor: string | null) =>
    call<Page<Notification>>('GET', `/me/notifications?${pageQuery(20, cursor)}`),
  markRead: (streamId: string) => call<void>('POST', `/me/notifications/${streamId}/read`),
  markAllRead: () => call<{ marked: number }>('POST', '/me/notifications/read-all'),
  settings: () => call<NotificationSettings>('GET', '/me/notification-settings'),
  updateSettings: (settings: NotificationSettings) =>
    call<NotificationSettings>('PATCH', '/me/notification-settings', settings),
  vapidPublicKey: () => call<{ public_key: string }>('GET', '/push/vapid-public-key'),
  subscribe: (subscription: PushSubscriptionJSON) => call<unknown>('POST', '/me/push-subscriptions', subscription),
  unsubscribe: (endpoint: string) => call<void>('DELETE', '/me/push-subscriptions', { endpoint }),
};

/** Opens the live feed: `unread` (the count) on connect, then a `notification` per go-live. */
export async function openLiveFeed(signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
  const response = await authorizedFetch('/me/notifications/live', {
    headers: { accept: 'text/event-stream' },
    cache: 'no-store',
    signal,
  });
  if (!response.ok || !response.body) throw await errorOf(response);
  return response.body;
}
