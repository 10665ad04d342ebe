-- depends: 0004_forgotten_supports
-- The area registry: every area a municipality imported from the CBS "wijk- en buurtkaart", as it last read.
-- An initiative may only be proposed for an area in it.
CREATE TABLE areas (
    code        text PRIMARY KEY,
    name        text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('gemeente', 'wijk', 'buurt')),
    parent_code text,
    outline     jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX areas_parent ON areas (parent_code);
