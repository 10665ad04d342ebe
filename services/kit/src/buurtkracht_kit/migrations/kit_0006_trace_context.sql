-- depends: kit_0005_unfinished_attempts
-- The W3C `traceparent` of the span that recorded an outbox row (sent with it as a Kafka header) or consumed an inbox
-- message (continued by work done later from the database); NULL when tracing is off. See buurtkracht_kit.tracing.
ALTER TABLE outbox ADD COLUMN traceparent text;
ALTER TABLE inbox ADD COLUMN traceparent text;
