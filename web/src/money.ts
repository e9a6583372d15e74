// Amounts as Stripe counts them: integers in a currency's minor unit (cents for usd,
// yen for jpy), shown and typed in major units.

/** Stripe's zero-decimal currencies (https://docs.stripe.com/currencies#zero-decimal). */
const ZERO_DECIMAL = new Set(['bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf']);
/** Stripe's three-decimal currencies. */
const THREE_DECIMAL = new Set(['bhd', 'jod', 'kwd', 'omr', 'tnd']);

/** How many decimals a major unit of `currency` has. */
export function exponent(currency: string): number {
  const code = currency.toLowerCase();
  if (ZERO_DECIMAL.has(code)) return 0;
  return THREE_DECIMAL.has(code) ? 3 : 2;
}

/** `minor` in `currency`, for the reader's locale: e.g. 500 usd is "$5.00", 500 jpy "¥500". */
export function formatMoney(minor: number, currency: string): string {
  const digits = exponent(currency);
  return new Intl.NumberFormat(undefined, {
    style: 'currency',
    currency: currency.toUpperCase(),
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  }).format(minor / 10 ** digits);
}

/**
 * What someone typed ("5", "5.5", "5,50") in minor units of `currency`, or null when it is
 * not a plain amount with at most the currency's decimals. Exact: no floating point.
 */
export function parseMoney(typed: string, currency: string): number | null {
  const digits = exponent(currency);
  const match = typed.trim().match(/^(\d{1,9})(?:[.,](\d*))?$/);
  if (!match || (match[2] ?? '').length > digits) return null;
  return Number(match[1]) * 10 ** digits + Number((match[2] ?? '').padEnd(digits, '0') || '0');
}
