import { useEffect, useRef } from 'preact/hooks';
import { chatName, type ChatLine } from './protocol';
import { TipText } from './tip-line';
import { useChat, useNow } from './use-chat';

/** How long a message stays on screen (the CSS fade ends with it). */
const SHOWN_MS = 30_000;
const MAX_SHOWN = 15;

/** Recent messages and tips only, read-only and anonymous, fading out: for an OBS browser source. */
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
  const shownSince = (line: ChatLine) => {
    let at = arrived.current.get(line.id);
    if (at === undefined) {
      at = Math.min(Date.now(), Date.parse(line.sent_at));
      arrived.current.set(line.id, at);
    }
    return at;
  };
  const shown = state.lines.filter((line) => now - shownSince(line) < SHOWN_MS).slice(-MAX_SHOWN);
  return (
    <>
      <h1 class="visually-hidden">{title}</h1>
      <div role="log" aria-label="Chat messages">
        <ol class="overlay-log">
          {shown.map((line) =>
            line.type === 'tip' ? (
              <li key={line.id} class="chat-tip">
                <TipText tip={line} />
              </li>
            ) : (
              <li key={line.id}>
                <span class="chat-author">{chatName(line.user)}</span> <span class="chat-text">{line.text}</span>
              </li>
            ),
          )}
        </ol>
      </div>
    </>
  );
}
