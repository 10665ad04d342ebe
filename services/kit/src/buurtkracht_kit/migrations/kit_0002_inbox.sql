-- The inbox (see buurtkracht_kit.consumer): one row per consumed message, written in the handler's transaction.
CREATE TABLE inbox (
    consumer     text        NOT NULL,
    message_id   text        NOT NULL,
    event_type   text        NOT NULL,
    outcome      text        NOT NULL CHECK (outcome IN ('processed', 'dead_lettered')),
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

-- Failed attempts survive restarts, so a message that keeps failing is dead-lettered after a bounded number.
CREATE TABLE consumer_failures (
    consumer        text        NOT NULL,
    message_id      text        NOT NULL,
    attempts        integer     NOT NULL,
    last_error      text        NOT NULL,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
