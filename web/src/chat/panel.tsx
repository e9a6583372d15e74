import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { MessageMenu } from './menu';
import { chatName, MAX_MESSAGE_CHARS, type ChatMessage, type ChatSettings } from './protocol';
import { isModerator, untilText, type ChatState } from './state';
import { TipText } from './tip-line';
import { useChat, useNow, type Chat } from './use-chat';

/** Within this many pixels of the bottom counts as reading the newest messages. */
const AT_BOTTOM_SLACK = 24;

interface Props {
  channelId: string;
  /** Where "Pop out chat" leads; none inside the pop-out itself. */
  popoutHref?: string;
  signedIn: boolean;
  /** The room said its channel changed (or may have while the socket was down). */
  onChannelChanged?: () => void;
}

/** A channel's chat: messages, the send form, the server's refusals and moderation. */
export function ChatPanel({ channelId, popoutHref, signedIn, onChannelChanged }: Props) {
  const chat = useChat(channelId, true);
  const { state } = chat;
  useEffect(() => {
    if (state.channelChanges > 0) onChannelChanged?.();
  }, [state.channelChanges]);
  return (
    <section class="chat" aria-labelledby="chat-heading">
      <div class="chat-head">
        <h2 id="chat-heading">Chat</h2>
        {popoutHref && (
          <a
            href={popoutHref}
            target="_blank"
            rel="noopener"
            onClick={(e) => {
              // A small window of its own; where pop-ups are blocked the link opens a tab.
              const popup = window.open(popoutHref, `chat-${channelId}`, 'popup,width=420,height=720');
              if (!popup) return;
              popup.opener = null;
              e.preventDefault();
            }}
          >
            Pop out chat
          </a>
        )}
      </div>
      <Modes settings={state.settings} />
      {chat.connection !== 'open' && (
        <p class="chat-connection">
          {chat.connection === 'connecting' ? 'Connecting to the chat…' : 'Chat disconnected; reconnecting…'}
        </p>
      )}
      <MessageList chat={chat} />
      <NoticeArea state={state} />
      {signedIn ? (
        <SendForm chat={chat} />
      ) : (
        <p class="chat-login">
          <a href="/login">Log in to chat</a>
        </p>
      )}
    </section>
  );
}

function Modes({ settings }: { settings: ChatSettings | null }) {
  if (!settings) return null;
  const modes = [];
  if (settings.slow_mode_secs > 0) modes.push(`Slow mode: one message every ${settings.slow_mode_secs} s`);
  if (settings.followers_only_minutes !== null) {
    modes.push(
      settings.followers_only_minutes > 0
        ? `Followers-only: followed for ${settings.followers_only_minutes} min`
        : 'Followers-only',
    );
  }
  return modes.length ? <p class="chat-modes">{modes.join(' · ')}</p> : null;
}

function MessageList({ chat }: { chat: Chat }) {
  const { state, send } = chat;
  const list = useRef<HTMLDivElement>(null);
  // Autoscroll follows new messages unless the reader scrolled up to read older ones.
  const [following, setFollowing] = useState(true);
  const count = state.lines.length;

  useLayoutEffect(() => {
    const element = list.current;
    if (element && following) element.scrollTop = element.scrollHeight;
  }, [count, following]);

  // Only the reader scrolling up stops following: content growing under a scroll must not.
  const lastTop = useRef(0);
  const onScroll = () => {
    const element = list.current!;
    if (element.scrollHeight - element.scrollTop - element.clientHeight <= AT_BOTTOM_SLACK) setFollowing(true);
    else if (element.scrollTop < lastTop.current) setFollowing(false);
    lastTop.current = element.scrollTop;
  };
  const moderating = isModerator(state);
  return (
    <div class="chat-log-wrap">
      <div ref={list} class="chat-log" role="log" aria-label="Chat messages" tabIndex={0} onScroll={onScroll}>
        {count === 0 ? (
          <p class="chat-empty">No messages yet.</p>
        ) : (
          <ol>
            {state.lines.map((line) =>
              line.type === 'tip' ? (
                <li key={line.id} class="chat-tip">
                  <SentAt value={line.sent_at} /> <TipText tip={line} />
                </li>
              ) : (
                <MessageItem
                  key={line.id}
                  message={line}
                  actions={moderating && line.user.id !== state.me?.id && line.user.id !== state.channelId}
                  send={send}
                />
              ),
            )}
          </ol>
        )}
      </div>
      {!following && (
        <button type="button" class="chat-jump" onClick={() => setFollowing(true)}>
          Jump to the latest messages
        </button>
      )}
    </div>
  );
}

function SentAt({ value }: { value: string }) {
  const time = new Date(value);
  return (
    <time dateTime={value} title={time.toLocaleString()}>
      {time.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}
    </time>
  );
}

function MessageItem({ message, actions, send }: { message: ChatMessage; actions: boolean; send: Chat['send'] }) {
  return (
    <li>
      <SentAt value={message.sent_at} />{' '}
      <span class="chat-author">{chatName(message.user)}</span>: <span class="chat-text">{message.text}</span>
      {actions && <MessageMenu message={message} send={send} />}
    </li>
  );
}

/** Why this user cannot send right now, if they cannot. */
function blockedText(state: ChatState, now: number): string | null {
  if (state.banned) return 'You are banned from this chat.';
  if (state.mutedUntil !== null && state.mutedUntil > now) return `You are timed out until ${untilText(state.mutedUntil)}.`;
  return null;
}

/** The server's refusals and rulings, announced (`role=alert` is a live region). */
function NoticeArea({ state }: { state: ChatState }) {
  const notice = state.notice;
  const now = useNow(notice?.until !== undefined);
  const blocked = blockedText(state, now);
  const left = notice?.until === undefined ? 0 : Math.ceil((notice.until - now) / 1000);
  // A finished countdown has nothing more to say.
  const show = !blocked && notice && (notice.until === undefined || left > 0);
  return (
    <div id="chat-notice" class="chat-notice" role="alert">
      {blocked}
      {show && notice.text}
      {show && notice.until !== undefined && (
        // The running number is shown, not re-announced every second.
        <span aria-live="off"> {left} s.</span>
      )}
    </div>
  );
}

function SendForm({ chat }: { chat: Chat }) {
  const { state, send, connection } = chat;
  const [draft, setDraft] = useState('');
  const lastSent = useRef('');
  const notice = state.notice;
  const blocked = blockedText(state, useNow(state.mutedUntil !== null)) !== null || connection !== 'open';

  // A refused message comes back into the field, to send again when allowed.
  useLayoutEffect(() => {
    if (notice?.retry && lastSent.current) {
      setDraft((current) => current || lastSent.current);
      lastSent.current = '';
    }
  }, [notice]);

  const submit = (event: Event) => {
    event.preventDefault();
    const text = draft.trim();
    if (!text || !send({ type: 'message', text })) return;
    lastSent.current = text;
    setDraft('');
  };
  return (
    <form class="chat-form" onSubmit={submit}>
      <label for="chat-input">Send a message</label>
      <div class="chat-send">
        <input
          id="chat-input"
          type="text"
          value={draft}
          maxLength={MAX_MESSAGE_CHARS}
          autocomplete="off"
          disabled={blocked}
          aria-describedby="chat-notice"
          onInput={(e) => setDraft((e.currentTarget as HTMLInputElement).value)}
        />
        <button type="submit" disabled={blocked || !draft.trim()}>
          Send
        </button>
      </div>
    </form>
  );
}
