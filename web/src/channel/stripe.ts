// Stripe.js, loaded only when someone is about to pay: Stripe requires it from
// js.stripe.com (never bundled or self-hosted), and the CSP allows that host for scripts
// and frames (crates/onair-server/src/web.rs). Typed here for the few calls the tip form
// makes.

const STRIPE_JS = 'https://js.stripe.com/v3/';

export interface StripeElement {
  mount(target: HTMLElement): void;
  destroy(): void;
}

export interface StripeElements {
  create(type: 'payment'): StripeElement;
}

export interface ConfirmResult {
  /** A refused card, a failed authentication…: `message` is for the payer. */
  error?: { type: string; message?: string };
  paymentIntent?: { id?: string; status: string };
}

export interface Stripe {
  elements(options: { clientSecret: string; appearance?: { theme: 'night' | 'stripe' } }): StripeElements;
  confirmPayment(options: {
    elements: StripeElements;
    redirect: 'if_required';
    confirmParams: { return_url: string };
  }): Promise<ConfirmResult>;
}

declare global {
  interface Window {
    Stripe?: (publishableKey: string) => Stripe;
  }
}

let loading: Promise<NonNullable<Window['Stripe']>> | null = null;

function loadScript(): Promise<NonNullable<Window['Stripe']>> {
  return new Promise((resolve, reject) => {
    if (window.Stripe) return resolve(window.Stripe);
    const script = document.createElement('script');
    script.src = STRIPE_JS;
    script.async = true;
    const failed = () => {
      script.remove();
      reject(new Error('The payment form could not be loaded. Check your connection and try again.'));
    };
    script.onload = () => (window.Stripe ? resolve(window.Stripe) : failed());
    script.onerror = failed;
    document.head.append(script);
  });
}

const instances = new Map<string, Stripe>();

/** Stripe.js for `publishableKey`: the script is added on first use (again after a failure). */
export async function stripeFor(publishableKey: string): Promise<Stripe> {
  loading ??= loadScript().catch((e) => {
    loading = null;
    throw e;
  });
  const factory = await loading;
  let stripe = instances.get(publishableKey);
  if (!stripe) {
    stripe = factory(publishableKey);
    instances.set(publishableKey, stripe);
  }
  return stripe;
}
