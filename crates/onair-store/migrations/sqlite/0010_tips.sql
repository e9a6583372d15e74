-- Issue 15: viewers tip creators through Stripe. A tip's state follows Stripe's verified
-- webhooks only; the money is in `tip_ledger`, append-only; each Stripe event is applied
-- once (`stripe_events`).

CREATE TABLE tips (
    id                BLOB    PRIMARY KEY NOT NULL,
    sender_id         BLOB    NOT NULL REFERENCES users (id),
    channel_id        BLOB    NOT NULL REFERENCES users (id),
    -- Minor units of `currency` (cents), as Stripe counts.
    amount            INTEGER NOT NULL CHECK (amount > 0),
    currency          TEXT    NOT NULL,
    message           TEXT,
    status            TEXT    NOT NULL CHECK (status IN
                          ('pending', 'succeeded', 'failed', 'partially_refunded', 'refunded')),
    refunded_amount   INTEGER NOT NULL DEFAULT 0,
    -- Set once Stripe answered; NULL while the PaymentIntent is not known to exist.
    payment_intent_id TEXT    UNIQUE,
    -- The client's Idempotency-Key (or one derived from its request), and a digest of the
    -- request it came with: a retry finds its tip, another request with the key is refused.
    idempotency_key   TEXT    NOT NULL,
    request_digest    TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (sender_id, idempotency_key)
);
CREATE INDEX tips_sent ON tips (sender_id, created_at, id) WHERE payment_intent_id IS NOT NULL;
CREATE INDEX tips_received ON tips (channel_id, created_at, id)
    WHERE status IN ('succeeded', 'partially_refunded', 'refunded');

CREATE TABLE tip_ledger (
    id              BLOB    PRIMARY KEY NOT NULL,
    tip_id          BLOB    NOT NULL REFERENCES tips (id),
    channel_id      BLOB    NOT NULL REFERENCES users (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('tip', 'refund')),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    currency        TEXT    NOT NULL,
    stripe_event_id TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
);
-- A tip is paid at most once.
CREATE UNIQUE INDEX tip_ledger_paid ON tip_ledger (tip_id) WHERE kind = 'tip';
CREATE INDEX tip_ledger_channel ON tip_ledger (channel_id, currency);

CREATE TRIGGER tip_ledger_no_update BEFORE UPDATE ON tip_ledger
BEGIN
    SELECT RAISE(ABORT, 'tip_ledger is append-only');
END;
CREATE TRIGGER tip_ledger_no_delete BEFORE DELETE ON tip_ledger
BEGIN
    SELECT RAISE(ABORT, 'tip_ledger is append-only');
END;

CREATE TABLE stripe_events (
    id          TEXT    PRIMARY KEY NOT NULL,
    type        TEXT    NOT NULL,
    received_at INTEGER NOT NULL
);
