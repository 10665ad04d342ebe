-- depends: kit_0003_idempotency
-- Housekeeping (see buurtkracht_kit.housekeeping) finds old rows by these, without reading whole tables.
CREATE INDEX inbox_processed_at ON inbox (processed_at);
CREATE INDEX consumer_failures_last_failed_at ON consumer_failures (last_failed_at);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
