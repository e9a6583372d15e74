-- Issue 16: operators. An admin flag and a suspension mark on users, and the audit log
-- of every admin action (through the API or the `onair admin` command), append-only.

ALTER TABLE users ADD COLUMN is_admin BOOLEAN NOT NULL DEFAULT FALSE;
-- Set while the account is suspended: no login, no refresh, no broadcast.
ALTER TABLE users ADD COLUMN suspended_at TIMESTAMPTZ;

CREATE TABLE admin_audit (
    id          UUID        PRIMARY KEY,
    -- The admin who acted; NULL for the command line (then `actor` says so).
    actor_id    UUID        REFERENCES users (id),
    -- `api` or `cli`.
    actor       TEXT        NOT NULL CHECK (actor IN ('api', 'cli')),
    action      TEXT        NOT NULL,
    -- `user`, `stream` or `job`, and its id.
    target_kind TEXT        NOT NULL,
    target_id   UUID        NOT NULL,
    -- A JSON object (the reason given, what the action changed).
    details     TEXT        NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL
);
-- The log, newest first (keyset).
CREATE INDEX admin_audit_created ON admin_audit (created_at, id);

CREATE FUNCTION admin_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER admin_audit_append_only BEFORE UPDATE OR DELETE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION admin_audit_append_only();
