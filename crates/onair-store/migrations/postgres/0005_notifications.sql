-- Go-live notifications (issue 6): a durable job queue, the in-app inbox, per-user
-- settings, Web Push subscriptions and outbound webhooks.

-- Jobs are enqueued in the transaction of the change that causes them. A worker claims
-- ready rows (FOR UPDATE SKIP LOCKED) and holds them for a lease; finished jobs are
-- deleted, so the table holds only the backlog and the dead letters.
CREATE TABLE jobs (
    id           UUID        PRIMARY KEY,
    kind         TEXT        NOT NULL,
    payload      TEXT        NOT NULL,
    state        TEXT        NOT NULL CHECK (state IN ('queued', 'running', 'dead')),
    attempts     INTEGER     NOT NULL DEFAULT 0,
    run_at       TIMESTAMPTZ NOT NULL,
    lease_until  TIMESTAMPTZ,
    last_error   TEXT,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX jobs_ready ON jobs (run_at) WHERE state = 'queued';
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_dead ON jobs (created_at, id) WHERE state = 'dead';

-- When the user's followers were last told they went live (the re-notify cooldown).
ALTER TABLE users ADD COLUMN go_live_notified_at TIMESTAMPTZ;
ALTER TABLE users ADD COLUMN push_enabled BOOLEAN NOT NULL DEFAULT TRUE;

-- One row per (recipient, broadcast): the primary key makes a retried fan-out batch a
-- no-op, and since stream ids are UUIDv7 it also orders the inbox by go-live time.
-- No foreign keys: the fan-out writes up to millions of rows at once and a per-row
-- trigger would double its cost; rows reference users and streams that are never
-- deleted through the API.
CREATE TABLE notifications (
    recipient_id UUID        NOT NULL,
    stream_id    UUID        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    read_at      TIMESTAMPTZ,
    PRIMARY KEY (recipient_id, stream_id)
);

-- A follower who muted a creator gets no go-live notification from them. Keyed by
-- creator first: the fan-out anti-joins one creator's mutes.
CREATE TABLE notification_mutes (
    creator_id UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (creator_id, user_id)
);
CREATE INDEX notification_mutes_user ON notification_mutes (user_id, created_at, creator_id);

CREATE TABLE push_subscriptions (
    id         UUID        PRIMARY KEY,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    endpoint   TEXT        NOT NULL,
    p256dh     TEXT        NOT NULL,
    auth       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX push_subscriptions_endpoint_key ON push_subscriptions (endpoint);
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);

-- Outbound webhooks (EventSub style): `secret` signs deliveries, so it is kept as given.
CREATE TABLE webhooks (
    id           UUID        PRIMARY KEY,
    owner_id     UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel_id   UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event        TEXT        NOT NULL CHECK (event IN ('stream.online', 'stream.offline')),
    callback_url TEXT        NOT NULL,
    secret       TEXT        NOT NULL,
    failures     INTEGER     NOT NULL DEFAULT 0,
    disabled_at  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhooks_channel_event ON webhooks (channel_id, event);
CREATE INDEX webhooks_owner ON webhooks (owner_id, created_at, id);

-- The go-live fan-out walks a creator's followers in id order, so the inbox rows it
-- writes arrive in their primary key's order (a near-sequential index walk instead of
-- random page touches).
-- Flipping the follows key serves that walk index-only; every lookup of the old
-- (follower_id, following_id) key binds both columns, and the follower-first lists
-- use follows_follower_created.
ALTER TABLE follows DROP CONSTRAINT follows_pkey, ADD PRIMARY KEY (following_id, follower_id);
