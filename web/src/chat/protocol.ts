// The chat wire protocol (crates/onair-server/src/chat/protocol.rs, README "Chat").

export interface ChatUser {
  id: string;
  username: string;
  display_name: string | null;
}

/** The socket's standing in the room: null is anonymous. */
export type ChatRole = 'owner' | 'moderator' | 'viewer' | null;

export interface ChatMessage {
  id: string;
  user: ChatUser;
  text: string;
  sent_at: string;
}

/** A paid tip, announced in the room once Stripe confirms it. */
export interface ChatTip {
  id: string;
  user: ChatUser;
  /** Minor units of `currency`. */
  amount: number;
  currency: string;
  message: string | null;
  sent_at: string;
}

/** What the chat log shows: messages and tips, in the order they came. */
export type ChatLine = ({ type: 'message' } & ChatMessage) | ({ type: 'tip' } & ChatTip);

export interface ChatSettings {
  slow_mode_secs: number;
  followers_only_minutes: number | null;
}

/** Longest message the server accepts (characters). */
export const MAX_MESSAGE_CHARS = 500;

export type ServerFrame =
  | { type: 'welcome'; user: ChatUser | null; history: number; role: ChatRole; timed_out_until: string | null }
  | { type: 'authenticated'; user: ChatUser; role: Exclude<ChatRole, null>; timed_out_until: string | null }
  | ({ type: 'message' } & ChatMessage)
  | ({ type: 'tip'; room: string } & ChatTip)
  | { type: 'error'; code: string; message: string; retry_after_ms?: number }
  | { type: 'pong' }
  | { type: 'message_deleted'; id: string }
  | { type: 'user_timed_out'; user_id: string; until: string }
  | { type: 'user_banned'; user_id: string }
  | { type: 'user_unbanned'; user_id: string }
  | ({ type: 'settings' } & ChatSettings)
  | { type: 'channel_changed' };

export type ClientFrame =
  | { type: 'auth'; token: string }
  | { type: 'message'; text: string }
  | { type: 'delete'; message_id: string }
  | { type: 'timeout'; user_id: string; seconds: number }
  | { type: 'ban'; user_id: string; reason: string | null };

export function chatName(user: ChatUser): string {
  return user.display_name || user.username;
}
