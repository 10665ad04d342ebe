-- The vouchers service's own tables (the kit's outbox, inbox and idempotency keys come first).
CREATE TABLE rounds (
    id                   uuid PRIMARY KEY,
    area_code            text        NOT NULL,
    name                 text        NOT NULL,
    mechanism            text        NOT NULL CHECK (mechanism IN ('committee', 'pledge')),
    total_budget_cents   bigint      NOT NULL CHECK (total_budget_cents > 0),
    voucher_amount_cents bigint      CHECK (voucher_amount_cents > 0),
    allow_wallet_claims  boolean     NOT NULL DEFAULT false,
    committee_quorum     integer     CHECK (committee_quorum > 0),
    opens_at             timestamptz NOT NULL,
    closes_at            timestamptz NOT NULL,
    status               text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_by           text        NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    closed_at            timestamptz
);
CREATE INDEX rounds_due ON rounds (closes_at) WHERE status = 'open';

-- Initiatives as the initiatives service announced them (approved ones), and what happened to them here.
CREATE TABLE initiatives (
    id                    uuid PRIMARY KEY,
    area_code             text        NOT NULL,
    title                 text        NOT NULL,
    initiators            text[]      NOT NULL,
    approved_amount_cents bigint      NOT NULL CHECK (approved_amount_cents > 0),
    status                text        NOT NULL,
    round_id              uuid REFERENCES rounds (id),
    awarded_cents         bigint,
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- The ledger. Balances are kept on the account row and changed only together with a journal line;
-- the CHECK makes overdrawing impossible whatever the concurrency.
CREATE TABLE accounts (
    id            bigserial PRIMARY KEY,
    round_id      uuid   NOT NULL REFERENCES rounds (id),
    kind          text   NOT NULL,
    owner         text   NOT NULL DEFAULT '',
    balance_cents bigint NOT NULL DEFAULT 0,
    CONSTRAINT no_overdraft CHECK (kind = 'municipality' OR balance_cents >= 0),
    UNIQUE (round_id, kind, owner)
);

CREATE TABLE journal_entries (
    id         bigserial PRIMARY KEY,
    round_id   uuid        NOT NULL REFERENCES rounds (id),
    kind       text        NOT NULL,
    reference  text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, reference)  -- a command is booked at most once
);
CREATE INDEX journal_entries_round ON journal_entries (round_id, id);

CREATE TABLE journal_lines (
    entry_id     bigint NOT NULL REFERENCES journal_entries (id),
    account_id   bigint NOT NULL REFERENCES accounts (id),
    amount_cents bigint NOT NULL CHECK (amount_cents <> 0)
);
CREATE INDEX journal_lines_entry ON journal_lines (entry_id);
CREATE INDEX journal_lines_account ON journal_lines (account_id);

-- Journal entries are immutable.
CREATE FUNCTION journal_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION journal_is_append_only();
CREATE TRIGGER journal_lines_append_only BEFORE UPDATE OR DELETE ON journal_lines
    FOR EACH ROW EXECUTE FUNCTION journal_is_append_only();

-- Every entry balances to the cent, checked at commit (once per entry, however many lines it has).
CREATE FUNCTION journal_entry_balances() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE total numeric;
BEGIN
    SELECT coalesce(sum(amount_cents), 0) INTO total FROM journal_lines WHERE entry_id = NEW.id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'journal entry % (% %) does not balance: %', NEW.id, NEW.kind, NEW.reference, total;
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER journal_entry_balanced AFTER INSERT ON journal_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_entry_balances();

CREATE TABLE pledges (
    id              uuid PRIMARY KEY,
    round_id        uuid        NOT NULL REFERENCES rounds (id),
    initiative_id   uuid        NOT NULL REFERENCES initiatives (id),
    resident_id     text        NOT NULL,
    amount_cents    bigint      NOT NULL CHECK (amount_cents > 0),
    requested_cents bigint      NOT NULL CHECK (requested_cents >= amount_cents),
    status          text        NOT NULL CHECK (status IN ('active', 'awarded', 'withdrawn', 'returned')),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pledges_initiative ON pledges (round_id, initiative_id) WHERE status = 'active';
CREATE INDEX pledges_resident ON pledges (round_id, resident_id);

CREATE TABLE award_decisions (
    id            uuid PRIMARY KEY,
    round_id      uuid        NOT NULL REFERENCES rounds (id),
    initiative_id uuid        NOT NULL REFERENCES initiatives (id),
    amount_cents  bigint      NOT NULL CHECK (amount_cents > 0),
    awarded       boolean     NOT NULL,
    quorum        integer     NOT NULL,
    votes         jsonb       NOT NULL,
    recorded_by   text        NOT NULL,
    decided_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE expense_claims (
    id                uuid PRIMARY KEY,
    initiative_id     uuid        NOT NULL REFERENCES initiatives (id),
    round_id          uuid        NOT NULL REFERENCES rounds (id),
    claimed_by        text        NOT NULL,
    supplier          text        NOT NULL,
    amount_cents      bigint      NOT NULL CHECK (amount_cents > 0),
    invoice_reference text        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('held', 'approved', 'declined')),
    decided_by        text,
    decision_reason   text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    decided_at        timestamptz,
    UNIQUE (initiative_id, invoice_reference)
);

CREATE TABLE payouts (
    id             uuid PRIMARY KEY,
    claim_id       uuid        NOT NULL UNIQUE REFERENCES expense_claims (id),
    initiative_id  uuid        NOT NULL REFERENCES initiatives (id),
    round_id       uuid        NOT NULL REFERENCES rounds (id),
    reference      text        NOT NULL UNIQUE,
    amount_cents   bigint      NOT NULL CHECK (amount_cents > 0),
    status         text        NOT NULL CHECK (status IN ('requested', 'settled')),
    bank_reference text,
    settled_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
