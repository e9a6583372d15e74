// Tips through Stripe: the server's payments API (README: Endpoints, payments).
import { useEffect, useState } from 'preact/hooks';
import { call, pageQuery, type PageFetch, type UserSummary } from './api';

export interface CurrencyBounds {
  currency: string;
  /** Smallest and largest tip, in minor units. */
  min: number;
  max: number;
}

export interface PaymentsConfig {
  enabled: boolean;
  /** For Stripe.js; without it the page cannot take a payment. */
  publishable_key: string | null;
  currencies: CurrencyBounds[];
}

export type TipStatus = 'pending' | 'succeeded' | 'failed' | 'refunded' | 'partially_refunded';

export interface Tip {
  id: string;
  channel: UserSummary;
  sender: UserSummary;
  /** Minor units of `currency`. */
  amount: number;
  currency: string;
  message: string | null;
  status: TipStatus;
  refunded_amount: number;
  payment_intent_id: string | null;
  created_at: string;
}

/** A tip just asked for: Stripe.js takes its payment with the client secret. */
export interface CreatedTip extends Tip {
  client_secret: string;
}

/** A channel's takings in one currency, in minor units. */
export interface Earnings {
  currency: string;
  succeeded: number;
  refunded: number;
  net: number;
  tips: number;
}

export interface TipRequest {
  amount: number;
  currency: string;
  message?: string;
}

export const paymentsApi = {
  config: () => call<PaymentsConfig>('GET', '/payments/config'),
  /** `idempotencyKey`: one per attempt, so that sending it again never charges twice. */
  tip: (channelId: string, tip: TipRequest, idempotencyKey: string) =>
    call<CreatedTip>('POST', `/channels/${encodeURIComponent(channelId)}/tips`, tip, { 'idempotency-key': idempotencyKey }),
  earnings: () => call<{ data: Earnings[] }>('GET', '/me/earnings').then((answer) => answer.data),
  /** Paid tips to your channel (refunded ones too), newest first. */
  received: (limit: number): PageFetch<Tip> => (cursor) =>
    call('GET', `/me/tips?direction=received&${pageQuery(limit, cursor)}`),
};

// Asked once per page load: it changes only with the server's configuration.
let config: Promise<PaymentsConfig> | null = null;

/** The server's payments settings; null until known, and when it cannot be read. */
export function usePaymentsConfig(): PaymentsConfig | null {
  const [value, setValue] = useState<PaymentsConfig | null>(null);
  useEffect(() => {
    let current = true;
    config ??= paymentsApi.config().catch((e) => {
      config = null;
      throw e;
    });
    config.then((c) => current && setValue(c)).catch(() => {});
    return () => {
      current = false;
    };
  }, []);
  return value;
}

/** Whether this page can take a tip: payments on and a key for Stripe.js. */
export function canTip(config: PaymentsConfig | null): config is PaymentsConfig & { publishable_key: string } {
  return !!config?.enabled && !!config.publishable_key && config.currencies.length > 0;
}
