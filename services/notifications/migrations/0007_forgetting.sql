-- depends: 0006_message_params
-- Residents who asked to be forgotten, by the SHA-256 digest of their id (never the id): an event published before
-- another service applied the erasure may still come, and must not bring them back. It names them by their
-- tombstone instead. Kept as long as the consumer's inbox rows (longer than any topic keeps a message).
CREATE TABLE forgotten_residents (
    digest       bytea PRIMARY KEY,
    tombstone    text        NOT NULL,
    forgotten_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX forgotten_residents_age ON forgotten_residents (forgotten_at);

-- Residents' messages (inbox items, sent or failed email) are deleted after `message_retention_days`.
CREATE INDEX notifications_finished ON notifications (created_at) WHERE status IN ('delivered', 'sent', 'failed');
