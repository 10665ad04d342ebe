-- A tiny domain for testing the kit: counters incremented by consumed events.
CREATE TABLE counters (id text PRIMARY KEY, value bigint NOT NULL DEFAULT 0, sequence integer NOT NULL DEFAULT 0);
-- One row per applied event, no unique key on purpose: a double application would show here.
CREATE TABLE applied (event_id uuid NOT NULL, counter_id text NOT NULL, sequence integer NOT NULL);
