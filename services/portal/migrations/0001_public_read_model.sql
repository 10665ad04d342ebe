-- The portal's read model (the kit's outbox and inbox come first). Only what the public pages show: no resident
-- ids of initiators, supporters, pledgers or officials, only counts and sums.
CREATE TABLE public_initiatives (
    id                     uuid PRIMARY KEY,
    area_code              text        NOT NULL,
    title                  text        NOT NULL,
    status                 text        NOT NULL,
    category               text,
    summary                text,
    requested_amount_cents bigint,
    approved_amount_cents  bigint,
    awarded_amount_cents   bigint,
    round_id               uuid,
    support_count          integer     NOT NULL DEFAULT 0 CHECK (support_count >= 0),
    support_threshold      integer,
    support_deadline       timestamptz,
    budget_lines           jsonb       NOT NULL DEFAULT '[]',
    report                 jsonb,
    first_seen_at          timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX public_initiatives_area ON public_initiatives (area_code text_pattern_ops, first_seen_at DESC, id);

CREATE TABLE public_rounds (
    id                      uuid PRIMARY KEY,
    area_code               text        NOT NULL,
    name                    text        NOT NULL,
    mechanism               text        NOT NULL,
    total_budget_cents      bigint      NOT NULL,
    voucher_amount_cents    bigint,
    opens_at                timestamptz NOT NULL,
    closes_at               timestamptz NOT NULL,
    is_open                 boolean     NOT NULL DEFAULT true,
    awarded_cents_at_close  bigint,
    returned_to_pool_cents  bigint
);
CREATE INDEX public_rounds_open_area ON public_rounds (area_code text_pattern_ops) WHERE is_open;

-- What each initiative has in each round: the sum pledged to it (as the latest pledge event told it) and its award.
CREATE TABLE round_shares (
    round_id       uuid        NOT NULL,
    initiative_id  uuid        NOT NULL,
    pledged_cents  bigint      NOT NULL DEFAULT 0 CHECK (pledged_cents >= 0),
    awarded_cents  bigint,
    changed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (round_id, initiative_id)
);
CREATE INDEX round_shares_initiative ON round_shares (initiative_id, changed_at DESC);
