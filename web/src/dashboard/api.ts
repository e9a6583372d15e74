// The creator dashboard's API calls. A channel's id is its owner's user id.
import { ApiError, call, type PageFetch, type Profile, type Stream, type UserSummary } from '../api';

export interface ChatSettings {
  slow_mode_secs: number;
  /** Minimum follow age in minutes to talk; null = anyone may talk. */
  followers_only_minutes: number | null;
}

export interface Ban {
  user: UserSummary;
  /** When a timeout ends; null for a ban until lifted. */
  until: string | null;
  reason: string | null;
  created_at: string;
}

export interface ModerationEntry {
  id: string;
  moderator_id: string;
  action: string;
  target_user_id: string | null;
  message_id: string | null;
  details: string | null;
  created_at: string;
}

export const WEBHOOK_EVENTS = ['stream.online', 'stream.offline'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

export interface Webhook {
  id: string;
  channel_id: string;
  event: WebhookEvent;
  callback_url: string;
  enabled: boolean;
  failures: number;
  created_at: string;
}

function paged(path: string, cursor: string | null): string {
  const query = new URLSearchParams({ limit: '50' });
  if (cursor) query.set('cursor', cursor);
  return `${path}?${query}`;
}

const channel = (id: string) => `/channels/${encodeURIComponent(id)}`;

export const dashboardApi = {
  startStream: (title: string, category: string | null) =>
    call<Stream>('POST', '/streams/start', { title, category: category ?? undefined }),
  endStream: () => call<Stream>('POST', '/streams/end'),
  updateStream: (id: string, patch: { title: string; category: string | null }) =>
    call<Stream>('PATCH', `/streams/${id}`, patch),
  userByName: (username: string) => call<Profile>('GET', `/users/by-username/${encodeURIComponent(username)}`),

  chatSettings: (id: string) => call<ChatSettings>('GET', `${channel(id)}/chat/settings`),
  putChatSettings: (id: string, settings: ChatSettings) => call<void>('PUT', `${channel(id)}/chat/settings`, settings),

  moderators: (id: string): PageFetch<UserSummary> => (cursor) => call('GET', paged(`${channel(id)}/moderators`, cursor)),
  addModerator: (id: string, user: string) => call<void>('PUT', `${channel(id)}/moderators/${user}`),
  removeModerator: (id: string, user: string) => call<void>('DELETE', `${channel(id)}/moderators/${user}`),

  bans: (id: string): PageFetch<Ban> => (cursor) => call('GET', paged(`${channel(id)}/bans`, cursor)),
  /** A ban until lifted, or with `duration_secs` a timeout (a timeout keeps no reason). */
  ban: (id: string, ban: { user_id: string; reason?: string; duration_secs?: number }) =>
    call<void>('POST', `${channel(id)}/bans`, ban),
  unban: (id: string, user: string) => call<void>('DELETE', `${channel(id)}/bans/${user}`),

  moderationLog: (id: string): PageFetch<ModerationEntry> => (cursor) =>
    call('GET', paged(`${channel(id)}/moderation-log`, cursor)),

  webhooks: (): PageFetch<Webhook> => (cursor) => call('GET', paged('/webhooks', cursor)),
  createWebhook: (hook: { channel_id: string; event: WebhookEvent; callback_url: string; secret: string }) =>
    call<Webhook>('POST', '/webhooks', hook),
  deleteWebhook: (id: string) => call<void>('DELETE', `/webhooks/${id}`),
};

/** A field's value refused before asking the server, shown as the server's refusals are. */
export class FieldProblem extends Error {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(reason);
  }
}

/**
 * The field a validation error names, if any: the server's `validation_failed` says it in
 * `field`; its messages for `validation_failed` and `invalid_body` start with `<field>: `.
 */
export function errorField(error: unknown): { field: string; reason: string } | null {
  if (error instanceof FieldProblem) return { field: error.field, reason: error.message };
  if (!(error instanceof ApiError) || !['validation_failed', 'invalid_body'].includes(error.code)) return null;
  const match = error.message.match(/^([a-z_]+): (.+)$/s);
  if (error.field) return { field: error.field, reason: match?.[1] === error.field ? match[2] : error.message };
  return match ? { field: match[1], reason: match[2] } : null;
}

/** The account called `username`, with a readable error when there is none. */
export async function findUser(username: string): Promise<Profile> {
  try {
    return await dashboardApi.userByName(username.trim().replace(/^@/, ''));
  } catch (e) {
    const unknown = e instanceof ApiError && e.status === 404 && e.code !== 'route_not_found';
    throw unknown ? new Error(`Nobody is called “${username.trim()}”.`) : e;
  }
}
