import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { chatName, type ChatMessage, type ClientFrame } from './protocol';

const ACTIONS: { label: string; frame: (m: ChatMessage) => ClientFrame }[] = [
  { label: 'Delete message', frame: (m) => ({ type: 'delete', message_id: m.id }) },
  { label: 'Time out 60 s', frame: (m) => ({ type: 'timeout', user_id: m.user.id, seconds: 60 }) },
  { label: 'Time out 10 min', frame: (m) => ({ type: 'timeout', user_id: m.user.id, seconds: 600 }) },
  { label: 'Ban', frame: (m) => ({ type: 'ban', user_id: m.user.id, reason: null }) },
];

/** A moderator's actions on one message: a button that opens a small list of actions. */
export function MessageMenu({ message, send }: { message: ChatMessage; send: (frame: ClientFrame) => boolean }) {
  const [open, setOpen] = useState(false);
  const toggle = useRef<HTMLButtonElement>(null);
  const menu = useRef<HTMLDivElement>(null);

  // A layout effect: focus is in the list as soon as it shows, before the next key press
  // (a later effect could move it there after that key had closed the list, losing it).
  useLayoutEffect(() => {
    if (!open) return;
    menu.current?.querySelector('button')?.focus();
    const outside = (event: Event) => {
      if (!menu.current?.contains(event.target as Node) && event.target !== toggle.current) setOpen(false);
    };
    document.addEventListener('pointerdown', outside);
    return () => document.removeEventListener('pointerdown', outside);
  }, [open]);

  const close = () => {
    setOpen(false);
    toggle.current?.focus();
  };
  const id = `actions-${message.id}`;
  // Escape is heard on the whole menu, toggle included: a key pressed right after the click,
  // before focus has moved into the list, still closes it.
  return (
    <span class="chat-menu" onKeyDown={(e) => open && e.key === 'Escape' && close()}>
      <button
        ref={toggle}
        type="button"
        class="chat-menu-toggle"
        aria-expanded={open}
        aria-controls={open ? id : undefined}
        aria-label={`Moderate ${chatName(message.user)}'s message`}
        onClick={() => setOpen(!open)}
      >
        ⋯
      </button>
      {open && (
        <div
          ref={menu}
          id={id}
          class="chat-menu-list"
          role="group"
          aria-label={`Actions on ${chatName(message.user)}'s message`}
        >
          {ACTIONS.map((action) => (
            <button
              key={action.label}
              type="button"
              onClick={() => {
                send(action.frame(message));
                close();
              }}
            >
              {action.label}
            </button>
          ))}
        </div>
      )}
    </span>
  );
}
