-- Issue 16: operators. An admin flag and a suspension mark on users, and the audit log
-- of every admin action (through the API or the `onair admin` command), append-only.

ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;
-- Set while the account is suspended: no login, no refresh, no broadcast.
ALTER TABLE users ADD COLUMN suspended_at INTEGER;

CREATE TABLE admin_audit (
    id          BLOB    PRIMARY KEY NOT NULL,
    -- The admin who acted; NULL for the command line (then `actor` says so).
    actor_id    BLOB    REFERENCES users (id),
    -- `api` or `cli`.
    actor       TEXT    NOT NULL CHECK (actor IN ('api', 'cli')),
    action      TEXT    NOT NULL,
    -- `user`, `stream` or `job`, and its id.
    target_kind TEXT    NOT NULL,
    target_id   BLOB    NOT NULL,
    -- A JSON object (the reason given, what the action changed).
    details     TEXT    NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL
) STRICT;
-- The log, newest first (keyset).
CREATE INDEX admin_audit_created ON admin_audit (created_at, id);

CREATE TRIGGER admin_audit_no_update BEFORE UPDATE ON admin_audit
BEGIN
    SELECT RAISE(ABORT, 'admin_audit is append-only');
END;
CREATE TRIGGER admin_audit_no_delete BEFORE DELETE ON admin_audit
BEGIN
    SELECT RAISE(ABORT, 'admin_audit is append-only');
END;
