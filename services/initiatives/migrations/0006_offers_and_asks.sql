-- depends: 0005_areas
-- Asking neighbours. `offers`: what a resident could help with (one per resident; deleting it withdraws it).
-- `help_requests`: what an initiative asks for. `asks`: who was asked for which request, and what they answered
-- (`status`: open, yes, no; lapsed when the request filled; withdrawn when the resident withdrew their offer).
-- The asks of a resident are the history fairness and their limit are decided from; they outlive the offer.
CREATE TABLE offers (
    resident_id        text PRIMARY KEY,
    home_buurt         text        NOT NULL,
    reach              text        NOT NULL CHECK (reach IN ('buurt', 'wijk')),
    reach_area         text        NOT NULL,
    tags               text[]      NOT NULL CHECK (cardinality(tags) > 0),
    hours_per_month    integer     NOT NULL CHECK (hours_per_month > 0),
    max_asks_per_month integer     NOT NULL CHECK (max_asks_per_month > 0),
    introduction       text        NOT NULL DEFAULT '',
    updated_at         timestamptz NOT NULL
);
CREATE INDEX offers_reach ON offers (reach_area);
CREATE INDEX offers_home ON offers (home_buurt);

CREATE TABLE help_requests (
    id               uuid PRIMARY KEY,
    initiative_id    uuid        NOT NULL REFERENCES initiatives (id),
    area_code        text        NOT NULL,
    tags             text[]      NOT NULL CHECK (cardinality(tags) > 0),
    description      text        NOT NULL,
    hours_per_person integer     NOT NULL CHECK (hours_per_person > 0),
    people_needed    integer     NOT NULL CHECK (people_needed > 0),
    needed_at        timestamptz,
    requested_by     text        NOT NULL,
    accepted         integer     NOT NULL DEFAULT 0 CHECK (accepted >= 0),
    status           text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'filled')),
    created_at       timestamptz NOT NULL,
    filled_at        timestamptz
);
CREATE INDEX help_requests_initiative ON help_requests (initiative_id, created_at);
CREATE INDEX help_requests_open ON help_requests (created_at, id) WHERE status = 'open';
CREATE INDEX help_requests_area ON help_requests (area_code);

CREATE TABLE asks (
    id              uuid PRIMARY KEY,
    help_request_id uuid        NOT NULL REFERENCES help_requests (id),
    resident_id     text        NOT NULL,
    area_code       text        NOT NULL,  -- the request's area, for the officials' counts
    asked_at        timestamptz NOT NULL,
    status          text        NOT NULL DEFAULT 'open'
                                CHECK (status IN ('open', 'yes', 'no', 'lapsed', 'withdrawn')),
    answered_at     timestamptz,
    UNIQUE (help_request_id, resident_id)
);
CREATE INDEX asks_resident ON asks (resident_id, asked_at);
CREATE INDEX asks_area ON asks (area_code);
CREATE INDEX asks_open ON asks (help_request_id) WHERE status = 'open';
