// What a chat panel knows, folded from the server's frames (pure, so the panel and the
// overlay share it).
import { chatName, type ChatLine, type ChatRole, type ChatSettings, type ChatUser, type ServerFrame } from './protocol';

/** Kept in memory; older lines scroll away. */
const MAX_LINES = 200;

export interface Notice {
  text: string;
  /** Counting down to this moment (epoch ms): "… in N s". */
  until?: number;
  /** The user's last message was refused for a while: give the text back to retry. */
  retry?: boolean;
}

export interface ChatState {
  channelId: string;
  me: ChatUser | null;
  role: ChatRole;
  /** Messages and tips, oldest first. */
  lines: ChatLine[];
  settings: ChatSettings | null;
  notice: Notice | null;
  /** This user may not send before this moment (epoch ms): timed out. */
  mutedUntil: number | null;
  banned: boolean;
  /**
   * Counts what the room said of its channel: each change (live, offline, ended,
   * retitled, edited), and each join (first or after a reconnect), before which one may
   * have been missed.
   */
  channelChanges: number;
}

export type ChatEvent = ServerFrame | { type: 'settings_loaded'; settings: ChatSettings } | { type: 'unmute' };

export function initialChat(channelId: string): ChatState {
  return {
    channelId,
    me: null,
    role: null,
    lines: [],
    settings: null,
    notice: null,
    mutedUntil: null,
    banned: false,
    channelChanges: 0,
  };
}

export function untilText(until: number): string {
  return new Date(until).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function nameOf(state: ChatState, userId: string): string {
  const said = state.lines.find((line) => line.user.id === userId);
  return said ? chatName(said.user) : 'A user';
}

export function isModerator(state: ChatState): boolean {
  return state.role === 'owner' || state.role === 'moderator';
}

function refused(state: ChatState, code: string, message: string, retryAfterMs?: number): ChatState {
  const until = retryAfterMs === undefined ? undefined : Date.now() + retryAfterMs;
  switch (code) {
    case 'slow_mode':
      return { ...state, notice: { text: 'Slow mode is on: you can send again in', until, retry: true } };
    case 'rate_limited':
      return { ...state, notice: { text: 'You are sending messages too fast: wait', until, retry: true } };
    case 'timed_out':
      return muted(state, until ?? Date.now());
    case 'banned':
      return { ...state, banned: true, notice: null };
    case 'followers_only':
      return { ...state, notice: { text: `Followers-only chat: ${message}.`, retry: true } };
    case 'unauthenticated':
      return { ...state, notice: { text: 'Log in to chat.' } };
    default:
      return { ...state, notice: { text: message } };
  }
}

function muted(state: ChatState, until: number): ChatState {
  return { ...state, mutedUntil: until, notice: null };
}

function added(state: ChatState, line: ChatLine): ChatState {
  // History is replayed on every (re)connect: keep each line once.
  if (state.lines.some((l) => l.id === line.id)) return state;
  return { ...state, lines: [...state.lines, line].slice(-MAX_LINES) };
}

export function chatReducer(state: ChatState, event: ChatEvent): ChatState {
  switch (event.type) {
    // A timeout outlives reconnects and reloads: the server says so on join.
    case 'welcome':
    case 'authenticated':
      return {
        ...state,
        channelChanges: state.channelChanges + (event.type === 'welcome' ? 1 : 0),
        me: event.user,
        role: event.role,
        banned: false,
        mutedUntil: event.timed_out_until ? Date.parse(event.timed_out_until) : null,
      };
    case 'message':
      return added(state, event);
    case 'tip': {
      const { room: _, ...tip } = event;
      return added(state, tip);
    }
    case 'message_deleted':
      return { ...state, lines: state.lines.filter((line) => line.id !== event.id) };
    case 'user_timed_out': {
      const until = Date.parse(event.until);
      if (event.user_id === state.me?.id) return muted(state, until);
      if (!isModerator(state)) return state;
      return { ...state, notice: { text: `${nameOf(state, event.user_id)} is timed out until ${untilText(until)}.` } };
    }
    case 'user_banned':
      if (event.user_id === state.me?.id) return refused(state, 'banned', '');
      if (!isModerator(state)) return state;
      return { ...state, notice: { text: `${nameOf(state, event.user_id)} is banned.` } };
    case 'user_unbanned':
      if (event.user_id !== state.me?.id) return state;
      return { ...state, banned: false, mutedUntil: null, notice: { text: 'You may chat again.' } };
    case 'settings': {
      const { type: _, ...settings } = event;
      return { ...state, settings };
    }
    case 'settings_loaded':
      return { ...state, settings: state.settings ?? event.settings };
    case 'unmute':
      return { ...state, mutedUntil: null, notice: null };
    case 'error':
      return refused(state, event.code, event.message, event.retry_after_ms);
    case 'channel_changed':
      return { ...state, channelChanges: state.channelChanges + 1 };
    case 'pong':
      return state;
  }
}
