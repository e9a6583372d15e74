import { useEffect, useRef } from 'preact/hooks';
import { chatName, type ChatMessage } from './protocol';
import { useChat, useNow } from './use-chat';

/** How long a message stays on screen (the CSS fade ends with it). */
const SHOWN_MS = 30_000;
const MAX_SHOWN = 15;

/** Recent messages only, read-only and anonymous, fading out: for an OBS browser source. */
export function ChatOverlay({ channelId, title }: { channelId: string; title: string }) {
  const { state } = useChat(channelId, false);
  const arrived = useRef(new Map<string, number>());
  const now = useNow(true);

  // The page behind the messages is see-through, so the stream shows under them.
  useEffect(() => {
    document.documentElement.classList.add('see-through');
    return () => document.documentElement.classList.remove('see-through');
  }, []);

  // Shown from arrival; replayed history counts from when it was sent, so old lines stay away.
  const shownSince = (message: ChatMessage) => {
    let at = arrived.current.get(message.id);
    if (at === undefined) {
      at = Math.min(Date.now(), Date.parse(message.sent_at));
      arrived.current.set(message.id, at);
    }
    return at;
  };
  const shown = state.messages.filter((m) => now - shownSince(m) < SHOWN_MS).slice(-MAX_SHOWN);
  return (
    <>
      <h1 class="visually-hidden">{title}</h1>
      <div role="log" aria-label="Chat messages">
        <ol class="overlay-log">
          {shown.map((message) => (
            <li key={message.id}>
              <span class="chat-author">{chatName(message.user)}</span> <span class="chat-text">{message.text}</span>
            </li>
          ))}
        </ol>
      </div>
    </>
  );
}
