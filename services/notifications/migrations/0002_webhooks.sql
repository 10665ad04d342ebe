-- depends: 0001_notifications
-- Webhook subscriptions of integrations, and one delivery row per (subscription, event).
-- The secret is kept as issued: it is needed to sign every delivery (HMAC), so it cannot be hashed.
CREATE TABLE webhook_subscriptions (
    id                   uuid PRIMARY KEY,
    url                  text        NOT NULL,
    secret               text        NOT NULL,
    event_types          text[]      NOT NULL DEFAULT '{}',
    description          text        NOT NULL DEFAULT '',
    created_by           text        NOT NULL,
    status               text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    disabled_reason      text CHECK (disabled_reason IN ('gone', 'repeated_failures')),
    disabled_at          timestamptz,
    consecutive_failures integer     NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'disabled') = (disabled_reason IS NOT NULL))
);
CREATE INDEX webhook_subscriptions_listing ON webhook_subscriptions (created_at DESC, id);

-- `body` is the CloudEvent in structured JSON mode, serialised once, so every attempt sends the same bytes.
-- A delivery is due when pending, `next_attempt_at` has passed and no dispatcher holds a lease on it
-- (`leased_until` in the future); `attempts` counts the attempts started and fences late outcomes.
CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    subscription_id  uuid        NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    body             text        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz DEFAULT now(),
    leased_until     timestamptz,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (subscription_id, event_id),
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (subscription_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (subscription_id, created_at DESC, id);
