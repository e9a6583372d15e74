import { createHmac, randomBytes } from 'node:crypto';
import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { apiSignup, bearer, chatLog, expectAccessible, loggedInPage, openInApp, region, SCREENSHOTS, type ApiUser } from './helpers';

// The server calls a stand-in for Stripe's API (tests/stripe-stand-in.mjs, started by
// playwright.config.ts); Stripe's webhooks are signed here with the server's secret.
const STRIPE_API = `http://127.0.0.1:${process.env.UI_TEST_STRIPE_PORT}`;
const WEBHOOK_SECRET = process.env.UI_TEST_STRIPE_WEBHOOK_SECRET!;

/**
 * Stripe.js cannot be downloaded here: this stands in for exactly what the tip form uses.
 * Like the real one, its Payment Element is a frame of js.stripe.com and confirming talks
 * to api.stripe.com, so the page's CSP is exercised. `window.stripeTest.decline` makes
 * the next confirmation fail as a declined card does.
 */
const STRIPE_JS = `(() => {
  const test = (window.stripeTest = { decline: false, confirmations: [] });
  const secrets = new WeakMap();
  window.Stripe = (key) => {
    if (!/^pk_/.test(key)) throw new Error('Stripe(): expected a publishable key');
    return {
      elements(options) {
        if (!/^pi_\\w+_secret_\\w+$/.test(options.clientSecret)) throw new Error('elements(): expected a client secret');
        const elements = {
          create(type) {
            if (type !== 'payment') throw new Error('create(): only the Payment Element');
            let frame = null;
            return {
              mount(target) {
                frame = document.createElement('iframe');
                frame.title = 'Secure payment input frame';
                frame.src = 'https://js.stripe.com/v3/elements-inner-payment.html';
                target.append(frame);
              },
              destroy() {
                frame?.remove();
              },
            };
          },
        };
        secrets.set(elements, options.clientSecret);
        return elements;
      },
      async confirmPayment({ elements, redirect, confirmParams }) {
        const secret = secrets.get(elements);
        if (!secret) throw new Error('confirmPayment(): elements of this Stripe');
        test.confirmations.push({ redirect, return_url: confirmParams.return_url });
        if (test.decline) return { error: { type: 'card_error', message: 'Your card was declined.' } };
        const id = secret.split('_secret_')[0];
        const answer = await fetch('https://api.stripe.com/v1/payment_intents/' + id + '/confirm', { method: 'POST', body: 'client_secret=' + secret });
        return { paymentIntent: await answer.json() };
      },
    };
  };
})();`;

const PAYMENT_FRAME = `<!doctype html><html lang="en"><title>Payment</title>
  <label for="card">Card number</label> <input id="card" autocomplete="cc-number" value="4242 4242 4242 4242"></html>`;

async function standInStripeJs(page: Page) {
  await page.route('https://js.stripe.com/v3/**', (route) => {
    const frame = new URL(route.request().url()).pathname.endsWith('.html');
    return route.fulfill(
      frame
        ? { contentType: 'text/html', body: PAYMENT_FRAME }
        : { contentType: 'application/javascript', body: STRIPE_JS },
    );
  });
  await page.route('https://api.stripe.com/**', (route) => {
    const id = new URL(route.request().url()).pathname.split('/')[3];
    return route.fulfill({
      contentType: 'application/json',
      headers: { 'access-control-allow-origin': '*' },
      body: JSON.stringify({ id, object: 'payment_intent', status: 'processing' }),
    });
  });
}

interface Created {
  idempotency_key: string;
  replays: number;
  payment_intent: { id: string; amount: number; currency: string; metadata: Record<string, string> };
}

/** The PaymentIntents the stand-in created for tips `sender` sent. */
async function intentsFrom(request: APIRequestContext, sender: ApiUser): Promise<Created[]> {
  const all: Created[] = await (await request.get(`${STRIPE_API}/__created`)).json();
  return all.filter((c) => c.payment_intent.metadata.sender_id === sender.id);
}

/** Delivers a Stripe event to the server's webhook, signed as Stripe signs. */
async function deliver(request: APIRequestContext, type: string, object: object) {
  const payload = JSON.stringify({
    id: `evt_${randomBytes(12).toString('hex')}`,
    object: 'event',
    type,
    created: Math.floor(Date.now() / 1000),
    data: { object },
  });
  const t = Math.floor(Date.now() / 1000);
  const v1 = createHmac('sha256', WEBHOOK_SECRET).update(`${t}.${payload}`).digest('hex');
  const response = await request.post('/api/hooks/stripe', {
    headers: { 'content-type': 'application/json', 'stripe-signature': `t=${t},v1=${v1}` },
    data: payload,
  });
  expect(response.status(), await response.text()).toBe(200);
}

test('a viewer tips $5.00 with a message: paid through Stripe, announced in chat, counted in the creator’s earnings', async ({ browser, request }) => {
  test.setTimeout(90_000);
  const creator = await apiSignup(request, 'tipped_');
  const fan = await apiSignup(request, 'tipper_');

  // The creator watches their own chat; there is no tipping yourself.
  const host = await loggedInPage(browser, creator);
  await openInApp(host, `/c/${creator.username}`);
  await expect(host.getByRole('heading', { name: 'Chat', exact: true })).toBeVisible();
  await expect(host.getByRole('button', { name: 'Follow' })).toHaveCount(0);
  await expect(host.getByRole('button', { name: 'Tip' })).toHaveCount(0);

  const viewer = await loggedInPage(browser, fan);
  await standInStripeJs(viewer);
  await openInApp(viewer, `/c/${creator.username}`);
  await viewer.getByRole('button', { name: 'Tip', exact: true }).click();
  const form = region(viewer, `Tip ${creator.username}`);
  const amount = form.getByLabel('Amount');
  await expect(amount).toBeFocused();
  // Amounts are typed in the currency's major unit: yen have no decimals, dollars two.
  await form.getByLabel('Currency').selectOption('jpy');
  await expect(form.getByText('From ¥100 to ¥50,000.')).toBeVisible();
  await form.getByLabel('Currency').selectOption('usd');
  await expect(form.getByText('From $1.00 to $500.00.')).toBeVisible();

  // Refused amounts are explained at the field, in dollars.
  await amount.fill('0.50');
  await form.getByRole('button', { name: 'Continue to payment' }).click();
  await expect(amount).toHaveAccessibleDescription('Enter an amount from $1.00 to $500.00.');
  await expect(amount).toHaveAttribute('aria-invalid', 'true');
  await amount.fill('5.001');
  await form.getByRole('button', { name: 'Continue to payment' }).click();
  await expect(form.getByRole('alert')).toHaveText('Enter an amount from $1.00 to $500.00.');
  // The server's refusal of a field is shown at that field too.
  await amount.fill('5');
  const message = form.getByLabel('Message (optional, shown in chat)');
  await message.fill('hidden\u202Etext');
  await form.getByRole('button', { name: 'Continue to payment' }).click();
  await expect(message).toHaveAccessibleDescription('must not contain invisible formatting characters');
  await expect(message).toHaveAttribute('aria-invalid', 'true');
  await expect(form.getByRole('alert')).toHaveCount(1);
  await expect(amount).not.toHaveAttribute('aria-invalid', 'true');
  expect(await intentsFrom(request, fan)).toEqual([]);
  await expectAccessible(viewer, 'channel page with the tip form');

  // The answer to the first try is lost: trying again sends the same Idempotency-Key, and
  // the server answers the same tip instead of charging twice.
  const keys: string[] = [];
  viewer.on('request', (r) => r.method() === 'POST' && r.url().endsWith('/tips') && keys.push(r.headers()['idempotency-key']));
  await viewer.route('**/api/channels/*/tips', async (route) => {
    await route.fetch();
    await route.abort('connectionreset');
  }, { times: 1 });
  await message.fill('gg, great stream');
  await form.getByRole('button', { name: 'Continue to payment' }).click();
  await expect(form.getByRole('alert')).toContainText('Could not start the tip');
  await form.getByRole('button', { name: 'Continue to payment' }).click();

  // Stripe's Payment Element (in its frame from js.stripe.com), then Pay.
  const pay = form.getByRole('button', { name: 'Pay $5.00' });
  await expect(pay).toBeEnabled();
  await expect(form.getByText(`$5.00 to ${creator.username} with “gg, great stream”`)).toBeFocused();
  await expect(form.frameLocator('iframe[title="Secure payment input frame"]').getByLabel('Card number')).toBeVisible();
  expect(keys).toHaveLength(2);
  expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
  expect(keys[1]).toBe(keys[0]);
  const [intent, ...others] = await intentsFrom(request, fan);
  expect(others).toEqual([]);
  expect(intent.payment_intent).toMatchObject({ amount: 500, currency: 'usd', metadata: { channel_id: creator.id, sender_id: fan.id } });
  await expectAccessible(viewer, 'channel page with the payment form');
  await form.screenshot({ path: `${SCREENSHOTS}tip-form.png` });

  // A declined card says why and lets the viewer pay again.
  await viewer.evaluate(() => ((window as unknown as { stripeTest: { decline: boolean } }).stripeTest.decline = true));
  await pay.click();
  await expect(form.getByRole('alert')).toHaveText('Your card was declined.');
  await viewer.evaluate(() => ((window as unknown as { stripeTest: { decline: boolean } }).stripeTest.decline = false));
  await pay.click();
  await expect(viewer.getByRole('status').filter({ hasText: 'Thanks!' })).toHaveText(
    'Thanks! Your tip will show in chat once the payment is confirmed.',
  );
  await expect(form).toHaveCount(0);
  await expect(viewer.getByRole('button', { name: 'Tip', exact: true })).toBeFocused();
  const confirmations = await viewer.evaluate(() => (window as unknown as { stripeTest: { confirmations: unknown[] } }).stripeTest.confirmations);
  expect(confirmations).toEqual([
    { redirect: 'if_required', return_url: expect.stringMatching(new RegExp(`/c/${creator.username}$`)) },
    { redirect: 'if_required', return_url: expect.stringMatching(new RegExp(`/c/${creator.username}$`)) },
  ]);
  // Nothing in chat until Stripe says the money arrived.
  await expect(chatLog(host)).not.toContainText('tipped');

  const paid = { ...intent.payment_intent, status: 'succeeded', amount_received: 500 };
  await deliver(request, 'payment_intent.succeeded', paid);
  const line = `${fan.username} tipped $5.00: gg, great stream`;
  await expect(chatLog(host).getByRole('listitem').filter({ hasText: 'tipped' })).toContainText(line);
  await expect(chatLog(viewer)).toContainText(line);
  await host.screenshot({ path: `${SCREENSHOTS}channel-tip.png` });

  // The creator's dashboard: the totals and the tip; then a partial refund.
  await openInApp(host, '/dashboard');
  const earnings = region(host, 'Earnings');
  const usd = earnings.getByRole('row', { name: /^USD/ });
  await expect(usd.getByRole('cell')).toHaveText(['1', '$5.00', '$0.00', '$5.00']);
  await expect(earnings.getByRole('list', { name: 'Tips received' })).toContainText(`${fan.username} tipped $5.00`);
  await expect(earnings.getByRole('list', { name: 'Tips received' })).toContainText('gg, great stream');
  await expectAccessible(host, '/dashboard with earnings');

  await deliver(request, 'charge.refunded', {
    id: `ch_${randomBytes(12).toString('hex')}`,
    object: 'charge',
    payment_intent: paid.id,
    amount: 500,
    amount_refunded: 200,
    currency: 'usd',
    refunded: false,
  });
  await openInApp(host, '/');
  await openInApp(host, '/dashboard');
  await expect(usd.getByRole('cell')).toHaveText(['1', '$5.00', '$2.00', '$3.00']);
  await expect(earnings.getByRole('list', { name: 'Tips received' })).toContainText('$2.00 refunded');
  await host.screenshot({ path: `${SCREENSHOTS}dashboard-earnings.png`, fullPage: true });
  const received = await (await request.get('/api/me/tips?direction=received', { headers: bearer(creator) })).json();
  expect(received.data.map((t: { status: string }) => t.status)).toEqual(['partially_refunded']);
});

test('no tipping when the server takes no payments', async ({ browser, request }) => {
  const creator = await apiSignup(request, 'notips_');
  const fan = await apiSignup(request, 'nofan_');
  const viewer = await loggedInPage(browser, fan);
  await viewer.route('**/api/payments/config', (route) =>
    route.fulfill({ json: { enabled: false, publishable_key: null, currencies: [] } }),
  );
  await openInApp(viewer, `/c/${creator.username}`);
  await expect(viewer.getByRole('button', { name: 'Follow' })).toBeVisible();
  await expect(viewer.getByRole('button', { name: 'Tip', exact: true })).toHaveCount(0);
  // Nor earnings on a dashboard that never had any.
  await openInApp(viewer, '/dashboard');
  await expect(viewer.getByRole('heading', { name: 'Webhooks' })).toBeVisible();
  await expect(region(viewer, 'Earnings')).toHaveCount(0);
});

test('back from a payment method that redirects, the outcome is said and the secret leaves the address bar', async ({ browser, request }) => {
  const creator = await apiSignup(request, 'redirected_');
  const fan = await apiSignup(request, 'redirfan_');
  const viewer = await loggedInPage(browser, fan);
  await viewer.goto(`/c/${creator.username}?payment_intent=pi_1&payment_intent_client_secret=pi_1_secret_2&redirect_status=succeeded`);
  await expect(viewer.getByRole('status').filter({ hasText: 'Thanks!' })).toBeVisible();
  expect(new URL(viewer.url()).search).toBe('');
});
