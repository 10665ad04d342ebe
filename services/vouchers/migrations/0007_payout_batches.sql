-- depends: 0006_equal_shares
-- Payouts through the bank: an initiative's bank account (payee), payout batches each written once as a SEPA
-- pain.001 file when it closes, cancellable payouts, and the camt.053 bank statements read back, line by line.

CREATE TABLE payees (
    initiative_id  uuid PRIMARY KEY REFERENCES initiatives (id),
    iban           text        NOT NULL,
    bic            text,
    account_holder text        NOT NULL,
    given_by       text        NOT NULL,
    given_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payees_given_by ON payees (given_by);

CREATE TABLE payout_batches (
    id                       uuid PRIMARY KEY,
    status                   text        NOT NULL CHECK (status IN ('open', 'closed')),
    opened_at                timestamptz NOT NULL DEFAULT now(),
    closed_at                timestamptz,
    closed_by                text,
    message_reference        text UNIQUE,
    requested_execution_date date,
    payout_count             integer     NOT NULL DEFAULT 0 CHECK (payout_count >= 0),
    total_cents              bigint      NOT NULL DEFAULT 0 CHECK (total_cents >= 0),
    pain001                  bytea,
    CHECK ((status = 'open') = (closed_at IS NULL)),
    CHECK (status = 'open' OR pain001 IS NOT NULL)
);
-- at most one open batch: approved payouts wait in it
CREATE UNIQUE INDEX payout_batches_one_open ON payout_batches ((true)) WHERE status = 'open';
CREATE INDEX payout_batches_closed ON payout_batches (closed_at DESC, id) WHERE status = 'closed';

ALTER TABLE payouts
    ADD COLUMN batch_id uuid REFERENCES payout_batches (id),
    ADD COLUMN attempt integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    ADD COLUMN cancelled_by text,
    ADD COLUMN cancel_reason text,
    ADD COLUMN cancelled_at timestamptz,
    DROP CONSTRAINT payouts_status_check,
    ADD CONSTRAINT payouts_status_check CHECK (status IN ('requested', 'settled', 'cancelled'));
CREATE INDEX payouts_batch ON payouts (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX payouts_cancelled_by ON payouts (cancelled_by) WHERE cancelled_by IS NOT NULL;

CREATE TABLE bank_statements (
    statement_id   text PRIMARY KEY,
    account_iban   text,
    uploaded_by    text        NOT NULL,
    uploaded_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bank_statement_lines (
    statement_id   text        NOT NULL REFERENCES bank_statements (statement_id),
    line           text        NOT NULL,
    end_to_end_id  text,
    amount_cents   bigint      NOT NULL,
    debit          boolean     NOT NULL,
    outcome        text        NOT NULL CHECK (outcome IN ('settled', 'returned', 'amount_mismatch',
                                   'unknown_reference', 'not_sent', 'already_settled', 'not_a_payout')),
    detail         text        NOT NULL,
    payout_id      uuid REFERENCES payouts (id),
    booked_on      date,
    read_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (statement_id, line)
);
CREATE INDEX bank_statement_lines_payout ON bank_statement_lines (payout_id) WHERE payout_id IS NOT NULL;
