import { formatMoney } from '../money';
import { chatName, type ChatTip } from './protocol';

/** "alice tipped $5.00: gg" — said in words, with a badge and a frame besides the color. */
export function TipText({ tip }: { tip: ChatTip }) {
  return (
    <>
      <span class="chat-tip-badge" aria-hidden="true">
        Tip
      </span>{' '}
      <span class="chat-author">{chatName(tip.user)}</span> tipped <strong class="chat-tip-amount">{formatMoney(tip.amount, tip.currency)}</strong>
      {tip.message && (
        <>
          : <span class="chat-text">{tip.message}</span>
        </>
      )}
    </>
  );
}
