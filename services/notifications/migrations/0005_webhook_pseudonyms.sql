-- depends: 0004_webhook_delivery_retention
-- A subscription sees who is who only when an admin allows it (`may_see_resident_ids`); otherwise every person in a
-- delivery is a pseudonym, the HMAC-SHA256 of their id under the subscription's own `pseudonym_key` (made here, never
-- shown), so it stays the same person across that subscription's deliveries and another subscription cannot link it.
-- Existing subscriptions, and deliveries they still wait for, are pseudonymised from now on until an admin allows more.
ALTER TABLE webhook_subscriptions
    ADD COLUMN may_see_resident_ids boolean NOT NULL DEFAULT false,
    ADD COLUMN pseudonym_key        text    NOT NULL
        DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
