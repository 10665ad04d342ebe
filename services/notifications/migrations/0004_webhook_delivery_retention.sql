-- depends: 0003_webhook_secret_rotation
-- Finished deliveries are deleted after `webhook_delivery_retention_days` (housekeeping finds them by this).
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (created_at) WHERE status <> 'pending';
