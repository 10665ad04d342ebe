-- depends: 0002_webhooks
-- A rotated signing secret keeps signing deliveries beside the new one until `previous_secret_until`
-- (Standard Webhooks: several space-separated signatures), so a receiver switches over at its own pace.
ALTER TABLE webhook_subscriptions
    ADD COLUMN previous_secret       text,
    ADD COLUMN previous_secret_until timestamptz,
    ADD CONSTRAINT previous_secret_has_an_end CHECK ((previous_secret IS NULL) = (previous_secret_until IS NULL));
