// Tipping a channel: the amount and message go to OnAir, which answers a Stripe
// PaymentIntent; Stripe's Payment Element then takes the payment in the page. The tip
// reaches the chat when Stripe's webhook confirms it, not when the browser says so.
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, displayName, type Profile } from '../api';
import { MAX_MESSAGE_CHARS } from '../chat/protocol';
import { FieldProblem } from '../dashboard/api';
import { useAction } from '../dashboard/hooks';
import { Alert, describedBy, FieldError } from '../dashboard/ui';
import { formatMoney, parseMoney } from '../money';
import { canTip, paymentsApi, usePaymentsConfig, type CreatedTip, type CurrencyBounds, type PaymentsConfig } from '../payments';
import { stripeFor, type Stripe, type StripeElements } from './stripe';

const FIELDS = ['amount', 'currency', 'message'];
const THANKS = 'Thanks! Your tip will show in chat once the payment is confirmed.';

/** "Tip" for a signed-in viewer of someone else's channel, when this server takes tips. */
export function Tipping({ channel, user }: { channel: Profile; user: string | null }) {
  const config = usePaymentsConfig();
  const [open, setOpen] = useState(false);
  const [status, setStatus] = useState(returnedFromStripe);
  const toggle = useRef<HTMLButtonElement>(null);
  if (!user || user === channel.id || !canTip(config)) return null;

  const close = (outcome: string) => {
    setOpen(false);
    setStatus(outcome);
    toggle.current?.focus();
  };
  return (
    <div class="tip">
      <button
        ref={toggle}
        type="button"
        aria-expanded={open}
        aria-controls="tip-panel"
        onClick={() => {
          setStatus('');
          setOpen(!open);
        }}
      >
        Tip
      </button>
      {open && (
        <section id="tip-panel" class="tip-panel" aria-labelledby="tip-heading">
          <h2 id="tip-heading">Tip {displayName(channel)}</h2>
          <TipFlow config={config} channel={channel} onClose={close} />
        </section>
      )}
      <p role="status" class="tip-status">
        {status}
      </p>
    </div>
  );
}

/**
 * Back from a payment method that redirects (a bank's page): Stripe adds the outcome to
 * the return URL. It is said once, and the client secret leaves the address bar.
 */
function returnedFromStripe(): string {
  const query = new URLSearchParams(location.search);
  const outcome = query.get('redirect_status');
  if (!outcome) return '';
  history.replaceState(history.state, '', location.pathname);
  return outcome === 'failed' ? 'The payment did not go through; your tip was not sent.' : THANKS;
}

interface FlowProps {
  config: PaymentsConfig & { publishable_key: string };
  channel: Profile;
  /** Closes the panel, saying `outcome` (empty: cancelled). */
  onClose: (outcome: string) => void;
}

/** The tip's details, then its payment. */
function TipFlow({ config, channel, onClose }: FlowProps) {
  const [tip, setTip] = useState<CreatedTip | null>(null);
  return tip ? (
    <Payment publishableKey={config.publishable_key} tip={tip} onClose={onClose} />
  ) : (
    <TipDetails config={config} channel={channel} onCreated={setTip} onCancel={() => onClose('')} />
  );
}

const rangeText = (bounds: CurrencyBounds) =>
  `Enter an amount from ${formatMoney(bounds.min, bounds.currency)} to ${formatMoney(bounds.max, bounds.currency)}.`;

function TipDetails({ config, channel, onCreated, onCancel }: Omit<FlowProps, 'onClose'> & { onCreated: (tip: CreatedTip) => void; onCancel: () => void }) {
  const create = useAction();
  const [currency, setCurrency] = useState(config.currencies[0].currency);
  const bounds = config.currencies.find((c) => c.currency === currency) ?? config.currencies[0];
  // One key per attempt: sending the same tip again (after a timeout, a 503) cannot
  // charge twice; changing it makes a new attempt.
  const attempt = useRef(crypto.randomUUID());
  const amountInput = useRef<HTMLInputElement>(null);
  useEffect(() => amountInput.current?.focus(), []);

  const submit = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const message = String(form.get('message') ?? '').trim();
    await create.run(async () => {
      const amount = parseMoney(String(form.get('amount') ?? ''), bounds.currency);
      if (amount === null || amount < bounds.min || amount > bounds.max) throw new FieldProblem('amount', rangeText(bounds));
      try {
        onCreated(await paymentsApi.tip(channel.id, { amount, currency: bounds.currency, message: message || undefined }, attempt.current));
      } catch (e) {
        // The server counts in minor units; the payer typed major ones.
        throw e instanceof ApiError && e.field === 'amount' ? new FieldProblem('amount', rangeText(bounds)) : e;
      }
    });
  };
  return (
    <form class="narrow" onSubmit={submit} onInput={() => (attempt.current = crypto.randomUUID())}>
      <div class="tip-amount">
        <div>
          <label for="tip-amount">Amount</label>
          <input
            ref={amountInput}
            id="tip-amount"
            name="amount"
            inputMode="decimal"
            autocomplete="off"
            required
            {...describedBy(create.error, 'amount', 'tip-amount')}
          />
        </div>
        <div>
          <label for="tip-currency">Currency</label>
          <select
            id="tip-currency"
            name="currency"
            value={bounds.currency}
            onChange={(e) => setCurrency((e.currentTarget as HTMLSelectElement).value)}
            {...describedBy(create.error, 'currency', 'tip-currency')}
          >
            {config.currencies.map((c) => (
              <option key={c.currency} value={c.currency}>
                {c.currency.toUpperCase()}
              </option>
            ))}
          </select>
        </div>
      </div>
      <p class="muted">
        From {formatMoney(bounds.min, bounds.currency)} to {formatMoney(bounds.max, bounds.currency)}.
      </p>
      <FieldError error={create.error} field="amount" id="tip-amount" />
      <FieldError error={create.error} field="currency" id="tip-currency" />
      <label for="tip-message">Message (optional, shown in chat)</label>
      <textarea id="tip-message" name="message" rows={2} maxLength={MAX_MESSAGE_CHARS} {...describedBy(create.error, 'message', 'tip-message')} />
      <FieldError error={create.error} field="message" id="tip-message" />
      <div class="row">
        <button type="submit" disabled={create.busy}>
          Continue to payment
        </button>
        <button type="button" class="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <Alert error={create.error} fields={FIELDS} context="Could not start the tip" />
    </form>
  );
}

/** Stripe's Payment Element for `tip`, and "Pay". */
function Payment({ publishableKey, tip, onClose }: { publishableKey: string; tip: CreatedTip; onClose: (outcome: string) => void }) {
  const load = useAction();
  const pay = useAction();
  const [ready, setReady] = useState<{ stripe: Stripe; elements: StripeElements } | null>(null);
  const [tries, setTries] = useState(0);
  const mountPoint = useRef<HTMLDivElement>(null);
  // The details form is gone with its focused button: focus moves to what replaced it.
  const summary = useRef<HTMLParagraphElement>(null);
  useEffect(() => summary.current?.focus(), []);

  useEffect(() => {
    let mounted: { destroy(): void } | null = null;
    let current = true;
    load.run(async () => {
      const stripe = await stripeFor(publishableKey);
      if (!current) return;
      const elements = stripe.elements({ clientSecret: tip.client_secret, appearance: { theme: 'night' } });
      const element = elements.create('payment');
      element.mount(mountPoint.current!);
      mounted = element;
      setReady({ stripe, elements });
    });
    return () => {
      current = false;
      mounted?.destroy();
    };
  }, [publishableKey, tip.client_secret, tries]);

  const submit = async (event: Event) => {
    event.preventDefault();
    if (!ready) return;
    await pay.run(async () => {
      const result = await ready.stripe.confirmPayment({
        elements: ready.elements,
        redirect: 'if_required',
        confirmParams: { return_url: location.href },
      });
      if (result.error) throw new Error(result.error.message ?? 'The payment did not go through.');
      onClose(THANKS);
    });
  };
  const amount = formatMoney(tip.amount, tip.currency);
  return (
    <form class="narrow" onSubmit={submit} aria-busy={!ready && !load.error}>
      <p ref={summary} tabIndex={-1}>
        {amount} to {displayName(tip.channel)}
        {tip.message && <> with “{tip.message}”</>}
      </p>
      <div ref={mountPoint} class="payment-element" />
      {!ready && !load.error && <p>Loading the payment form…</p>}
      <Alert error={load.error} />
      {load.error && (
        <button type="button" class="secondary" onClick={() => setTries((n) => n + 1)}>
          Try again
        </button>
      )}
      <Alert error={pay.error} />
      <div class="row">
        <button type="submit" disabled={!ready || pay.busy}>
          Pay {amount}
        </button>
        <button type="button" class="secondary" onClick={() => onClose('')}>
          Cancel
        </button>
      </div>
    </form>
  );
}
