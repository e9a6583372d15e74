-- Issue 16: a broadcast fed by the built-in ingest holds a lease its ingest node renews
-- while the publish runs; when the node dies the lease lapses and the broadcast goes
-- offline (then ends after the reconnect window). NULL: no lease (an external media
-- server, which tells us itself when a publish ends).
ALTER TABLE streams ADD COLUMN publisher_lease_until TIMESTAMPTZ;
-- The sweep looks for lapsed leases among live broadcasts only.
CREATE INDEX streams_publisher_lease ON streams (publisher_lease_until)
    WHERE status = 'live' AND publisher_lease_until IS NOT NULL;
