-- The initiatives service's own tables (the kit's outbox and inbox come first).
CREATE TABLE initiatives (
    id                    uuid PRIMARY KEY,
    owner_id              text        NOT NULL,
    co_initiators         text[]      NOT NULL DEFAULT '{}',
    title                 text        NOT NULL,
    summary               text        NOT NULL,
    description           text        NOT NULL,
    area_code             text        NOT NULL,
    category              text        NOT NULL,
    budget_lines          jsonb       NOT NULL,
    requested_amount_cents bigint     NOT NULL CHECK (requested_amount_cents > 0),
    volunteers_wanted     integer     NOT NULL CHECK (volunteers_wanted >= 0),
    status                text        NOT NULL,
    support_threshold     integer,
    support_deadline      timestamptz,
    support_count         integer     NOT NULL DEFAULT 0 CHECK (support_count >= 0),
    volunteer_count       integer     NOT NULL DEFAULT 0 CHECK (volunteer_count >= 0),
    approved_amount_cents bigint      CHECK (approved_amount_cents > 0 AND approved_amount_cents <= requested_amount_cents),
    awarded_amount_cents  bigint,
    round_id              uuid,
    review_note           text,
    what_was_done         text,
    spending              jsonb,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    version               integer     NOT NULL DEFAULT 0
);
CREATE INDEX initiatives_area_status ON initiatives (area_code, status);
CREATE INDEX initiatives_status_created ON initiatives (status, created_at DESC);
CREATE INDEX initiatives_overdue ON initiatives (support_deadline) WHERE status = 'gathering_support';

CREATE TABLE supports (
    initiative_id uuid        NOT NULL REFERENCES initiatives (id),
    resident_id   text        NOT NULL,
    supported_at  timestamptz NOT NULL,
    PRIMARY KEY (initiative_id, resident_id)
);

CREATE TABLE volunteers (
    initiative_id uuid        NOT NULL REFERENCES initiatives (id),
    resident_id   text        NOT NULL,
    offer         text        NOT NULL,
    joined_at     timestamptz NOT NULL,
    PRIMARY KEY (initiative_id, resident_id)
);

CREATE TABLE transitions (
    id            bigserial PRIMARY KEY,
    initiative_id uuid        NOT NULL REFERENCES initiatives (id),
    from_status   text,
    to_status     text        NOT NULL,
    actor_id      text        NOT NULL,
    note          text,
    at            timestamptz NOT NULL
);
CREATE INDEX transitions_initiative ON transitions (initiative_id, id);
