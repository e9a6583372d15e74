// A stand-in for the two calls of Stripe's API that OnAir makes (this machine cannot reach
// api.stripe.com): POST /v1/payment_intents and GET /v1/payment_intents/{id}, checked as
// Stripe checks them (secret key, form body, Idempotency-Key; the same key answers the same
// PaymentIntent, with other parameters an idempotency_error). GET /__created lists what was
// created, for the tests to sign webhooks about. Playwright starts it (playwright.config.ts)
// with PORT and STRIPE_SECRET_KEY.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

const port = Number(process.env.PORT);
const secretKey = process.env.STRIPE_SECRET_KEY;
if (!port || !secretKey) throw new Error('PORT and STRIPE_SECRET_KEY are required');

/** PaymentIntents by id, and by the Idempotency-Key (with the body) that created them. */
const intents = new Map();
const byKey = new Map();

const random = (bytes) => randomBytes(bytes).toString('hex');

function answer(response, status, body) {
  response.writeHead(status, { 'content-type': 'application/json', 'request-id': `req_${random(8)}` });
  response.end(JSON.stringify(body));
}

/** Stripe's error envelope. */
function refuse(response, status, type, message, param) {
  answer(response, status, { error: { type, message, ...(param ? { param } : {}) } });
}

const REQUIRED = ['amount', 'currency', 'automatic_payment_methods[enabled]', 'description', 'metadata[tip_id]', 'metadata[channel_id]', 'metadata[sender_id]'];

function create(request, response, raw) {
  if (!/^application\/x-www-form-urlencoded/.test(request.headers['content-type'] ?? '')) {
    return refuse(response, 400, 'invalid_request_error', 'Stripe takes form-encoded bodies');
  }
  const key = request.headers['idempotency-key'];
  if (!key) return refuse(response, 400, 'invalid_request_error', 'OnAir always sends an Idempotency-Key');
  const seen = byKey.get(key);
  if (seen) {
    if (seen.raw !== raw) {
      return refuse(response, 400, 'idempotency_error', 'Keys for idempotent requests can only be used with the same parameters they were first used with.');
    }
    seen.replays += 1;
    return answer(response, 200, intents.get(seen.id));
  }
  const form = new URLSearchParams(raw);
  const missing = REQUIRED.find((name) => !form.get(name));
  if (missing) return refuse(response, 400, 'invalid_request_error', `Missing required param: ${missing}.`, missing);
  const amount = Number(form.get('amount'));
  if (!Number.isInteger(amount) || amount < 1) return refuse(response, 400, 'invalid_request_error', 'Invalid integer', 'amount');
  if (!/^[a-z]{3}$/.test(form.get('currency'))) return refuse(response, 400, 'invalid_request_error', 'Invalid currency', 'currency');
  if (form.get('automatic_payment_methods[enabled]') !== 'true') {
    return refuse(response, 400, 'invalid_request_error', 'OnAir lets Stripe pick the payment methods', 'automatic_payment_methods[enabled]');
  }
  const metadata = {};
  for (const [name, value] of form) {
    const field = name.match(/^metadata\[(.+)\]$/);
    if (field) metadata[field[1]] = value;
  }
  const id = `pi_${random(12)}`;
  const intent = {
    id,
    object: 'payment_intent',
    amount,
    amount_received: 0,
    automatic_payment_methods: { enabled: true },
    client_secret: `${id}_secret_${random(12)}`,
    created: Math.floor(Date.now() / 1000),
    currency: form.get('currency'),
    description: form.get('description'),
    livemode: false,
    metadata,
    status: 'requires_payment_method',
  };
  intents.set(id, intent);
  byKey.set(key, { id, raw, replays: 0 });
  answer(response, 200, intent);
}

createServer((request, response) => {
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => {
    const raw = Buffer.concat(chunks).toString();
    const path = new URL(request.url, 'http://stand-in').pathname;
    if (request.method === 'GET' && path === '/') return answer(response, 200, { ok: true });
    if (request.method === 'GET' && path === '/__created') {
      return answer(response, 200, [...byKey.entries()].map(([key, { id, replays }]) => ({ idempotency_key: key, replays, payment_intent: intents.get(id) })));
    }
    if (request.headers.authorization !== `Bearer ${secretKey}`) {
      return refuse(response, 401, 'invalid_request_error', 'Invalid API Key provided');
    }
    if (request.method === 'POST' && path === '/v1/payment_intents') return create(request, response, raw);
    const one = path.match(/^\/v1\/payment_intents\/([^/]+)$/);
    if (request.method === 'GET' && one) {
      const intent = intents.get(one[1]);
      return intent
        ? answer(response, 200, intent)
        : refuse(response, 404, 'invalid_request_error', `No such payment_intent: '${one[1]}'`, 'intent');
    }
    refuse(response, 404, 'invalid_request_error', `Unrecognized request URL (${request.method}: ${path})`);
  });
}).listen(port, '127.0.0.1');
