-- depends: kit_0004_housekeeping
-- An attempt that is still `in_progress` when the message comes again never finished: the process
-- applying it died (see buurtkracht_kit.consumer); it counts as a failed attempt.
ALTER TABLE consumer_failures ADD COLUMN in_progress boolean NOT NULL DEFAULT false;
