-- depends: 0001_public_read_model
-- The areas as the initiatives service's registry tells them (AreaRegistered): the pages show an area by its name,
-- with its wijk or municipality, and its outline on a map.
CREATE TABLE areas (
    code        text PRIMARY KEY,
    name        text        NOT NULL,
    kind        text        NOT NULL,
    parent_code text,
    outline     jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
