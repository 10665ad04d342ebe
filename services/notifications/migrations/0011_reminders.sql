-- depends: 0010_areas_known
-- Reminders: the deadlines this service learns from the events, and the reminders it sent.
-- Rounds: their mechanism and period (RoundOpened), and whether they closed (RoundClosed). Rounds learnt before this
-- migration have none and remind nobody.
ALTER TABLE rounds_known
    ADD COLUMN mechanism text,
    ADD COLUMN opens_at  timestamptz,
    ADD COLUMN closes_at timestamptz,
    ADD COLUMN closed    boolean NOT NULL DEFAULT false;

-- Initiatives: their status since when (the event's time), and their support period and count.
ALTER TABLE initiatives_known
    ADD COLUMN status            text,
    ADD COLUMN status_since      timestamptz,
    ADD COLUMN support_threshold integer,
    ADD COLUMN support_deadline  timestamptz,
    ADD COLUMN support_count     integer NOT NULL DEFAULT 0;
CREATE INDEX initiatives_known_waiting ON initiatives_known (status)
    WHERE status IN ('gathering_support', 'in_review', 'in_progress');

-- What each resident's wallet in an open round holds (WalletsIssued, then each PledgeMade/PledgeWithdrawn);
-- dropped when the round closes.
CREATE TABLE wallets_known (
    round_id      uuid   NOT NULL,
    resident_id   text   NOT NULL,
    balance_cents bigint NOT NULL CHECK (balance_cents >= 0),
    PRIMARY KEY (round_id, resident_id)
);
CREATE INDEX wallets_known_resident ON wallets_known (resident_id);

-- Residents known to live in an area (whom a ballot reminder reaches): their home buurt as their token tells it when
-- they register with this service, a wallet issued in a round of the area, support given to an initiative of the area.
CREATE TABLE area_residents (
    area_code   text NOT NULL,
    resident_id text NOT NULL,
    PRIMARY KEY (area_code, resident_id)
);
CREATE INDEX area_residents_resident ON area_residents (resident_id);

-- Who cast a ballot in an open Equal Shares round (BallotCast); dropped when the round closes.
CREATE TABLE ballots_cast (
    round_id    uuid NOT NULL,
    resident_id text NOT NULL,
    PRIMARY KEY (round_id, resident_id)
);
CREATE INDEX ballots_cast_resident ON ballots_cast (resident_id);

-- Expense claims and when they were decided (ExpenseClaimed, ExpenseApproved/ExpenseDeclined): a decision heard
-- before its claim leaves a row without claimed_at.
CREATE TABLE claims_known (
    claim_id      uuid PRIMARY KEY,
    round_id      uuid NOT NULL,
    initiative_id uuid NOT NULL,
    area_code     text NOT NULL,
    supplier      text,
    amount_cents  bigint,
    claimed_at    timestamptz,
    decided_at    timestamptz
);
CREATE INDEX claims_known_undecided ON claims_known (claimed_at) WHERE decided_at IS NULL;

-- One row per reminder a person got: written with its messages, so no reminder is sent twice.
CREATE TABLE reminders_sent (
    kind        text        NOT NULL,
    subject     text        NOT NULL,
    resident_id text        NOT NULL,
    moment      timestamptz NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, subject, resident_id, moment)
);
CREATE INDEX reminders_sent_resident ON reminders_sent (resident_id);
