-- depends: 0003_resident_lookups
-- The supports of a forgotten resident count on under their tombstone; so that they cannot support the same
-- initiative a second time after being forgotten, the SHA-256 of their id is kept with each such initiative.
CREATE TABLE forgotten_supports (
    initiative_id uuid  NOT NULL REFERENCES initiatives (id),
    digest        bytea NOT NULL,
    PRIMARY KEY (initiative_id, digest)
);
