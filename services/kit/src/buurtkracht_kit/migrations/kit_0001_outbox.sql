-- The transactional outbox (see buurtkracht_kit.outbox): events written with the state they describe,
-- deleted by the relay once Kafka acknowledged them.
CREATE TABLE outbox (
    id               bigserial PRIMARY KEY,
    event_id         uuid        NOT NULL UNIQUE,
    aggregate_type   text        NOT NULL,
    aggregate_id     text        NOT NULL,
    event_type       text        NOT NULL,
    topic            text        NOT NULL,
    source           text        NOT NULL,
    occurred_at      timestamptz NOT NULL,
    payload          jsonb       NOT NULL,
    verbatim_key     bytea,
    verbatim_value   bytea,
    verbatim_headers jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         integer     NOT NULL DEFAULT 0,
    last_error       text,
    retry_after      timestamptz
);
-- Rows in backoff after a failed send; they hold back the later rows of their aggregate.
CREATE INDEX outbox_waiting ON outbox (aggregate_id, id) WHERE retry_after IS NOT NULL;
