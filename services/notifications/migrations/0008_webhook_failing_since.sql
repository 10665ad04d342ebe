-- depends: 0007_forgetting
-- When a subscription's current run of failed attempts began: it is disabled only once the run is both long
-- (`webhook_disable_after_failures` attempts) and old (`webhook_disable_after_hours`), so a busy endpoint that is
-- down for a minute is not switched off by the many deliveries that failed in that minute.
ALTER TABLE webhook_subscriptions ADD COLUMN failing_since timestamptz;
UPDATE webhook_subscriptions SET failing_since = now() WHERE consecutive_failures > 0;
