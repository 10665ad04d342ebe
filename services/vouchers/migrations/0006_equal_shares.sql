-- depends: 0005_claimed_wallets_by_digest
-- Equal Shares rounds: residents of the round's area cast an approval ballot (one per resident, replaced while the
-- round is open); at the close the ballots are sealed as pseudonymous votes, the Method of Equal Shares decides,
-- and the outcome is stored with its explanation, so that it reads the same however the library computing it
-- changes. Ballots carry no foreign key to `rounds`, for the reason of 0003 (every ballot holds the round's lock).

ALTER TABLE rounds DROP CONSTRAINT rounds_mechanism_check,
    ADD CONSTRAINT rounds_mechanism_check CHECK (mechanism IN ('committee', 'pledge', 'equal_shares'));

CREATE TABLE ballots (
    round_id       uuid        NOT NULL,
    resident_id    text        NOT NULL,
    initiative_ids uuid[]      NOT NULL,
    cast_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (round_id, resident_id)
);
CREATE INDEX ballots_resident ON ballots (resident_id);

-- The outcome of a closed Equal Shares round: written once, in the transaction that closes the round.
CREATE TABLE equal_shares_outcomes (
    round_id     uuid        PRIMARY KEY REFERENCES rounds (id),
    budget_cents bigint      NOT NULL CHECK (budget_cents > 0),
    voters       integer     NOT NULL CHECK (voters >= 0),
    share_cents  text        NOT NULL,  -- each voter's share after the completion, exact (numerator/denominator)
    method       text        NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE equal_shares_results (
    round_id               uuid    NOT NULL REFERENCES equal_shares_outcomes (round_id),
    initiative_id          uuid    NOT NULL,
    title                  text    NOT NULL,
    cost_cents             bigint  NOT NULL CHECK (cost_cents > 0),
    supporters             integer NOT NULL CHECK (supporters >= 0),
    funded                 boolean NOT NULL,
    position               integer,
    reason                 text    CHECK (reason IN ('no_supporters', 'over_budget', 'supporters_short')),
    supporters_money_cents bigint,
    spent_on               jsonb   NOT NULL DEFAULT '[]',
    shown                  integer NOT NULL,  -- the order of the outcome: funded as funded, then most supporters
    PRIMARY KEY (round_id, initiative_id),
    CHECK (funded = (position IS NOT NULL) AND funded = (reason IS NULL))
);

-- The ballots as they were counted, under voter numbers: what the Pabulib export publishes.
CREATE TABLE equal_shares_votes (
    round_id       uuid    NOT NULL REFERENCES rounds (id),
    voter          integer NOT NULL,
    initiative_ids uuid[]  NOT NULL,
    PRIMARY KEY (round_id, voter)
);

CREATE FUNCTION equal_shares_outcome_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the outcome of a closed round is final: % on % refused', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER equal_shares_outcomes_final BEFORE UPDATE OR DELETE ON equal_shares_outcomes
    FOR EACH ROW EXECUTE FUNCTION equal_shares_outcome_is_final();
CREATE TRIGGER equal_shares_results_final BEFORE UPDATE OR DELETE ON equal_shares_results
    FOR EACH ROW EXECUTE FUNCTION equal_shares_outcome_is_final();
CREATE TRIGGER equal_shares_votes_final BEFORE UPDATE OR DELETE ON equal_shares_votes
    FOR EACH ROW EXECUTE FUNCTION equal_shares_outcome_is_final();
