-- depends: 0001_vouchers
-- The steering group of an area is registered by an official; its members propose awards and each casts their
-- own vote. A decision recorded before (with every vote given at once) becomes a decided proposal with its votes.

CREATE TABLE steering_groups (
    area_code  text        PRIMARY KEY,
    changed_by text        NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE steering_group_members (
    area_code text    NOT NULL REFERENCES steering_groups (area_code),
    member_id text    NOT NULL,
    chair     boolean NOT NULL DEFAULT false,
    position  integer NOT NULL,
    PRIMARY KEY (area_code, member_id)
);
CREATE UNIQUE INDEX steering_group_one_chair ON steering_group_members (area_code) WHERE chair;
CREATE INDEX steering_group_members_member ON steering_group_members (member_id);

ALTER TABLE award_decisions RENAME TO award_proposals;
ALTER TABLE award_proposals RENAME COLUMN recorded_by TO proposed_by;
ALTER TABLE award_proposals ADD COLUMN status text, ADD COLUMN proposed_at timestamptz;
UPDATE award_proposals
   SET status = CASE WHEN awarded THEN 'awarded' ELSE 'not_awarded' END, proposed_at = decided_at;
ALTER TABLE award_proposals
    ALTER COLUMN status SET NOT NULL,
    ADD CONSTRAINT award_proposals_status CHECK (status IN ('open', 'awarded', 'not_awarded', 'lapsed')),
    ALTER COLUMN proposed_at SET NOT NULL,
    ALTER COLUMN proposed_at SET DEFAULT now(),
    ALTER COLUMN decided_at DROP NOT NULL,
    ALTER COLUMN decided_at DROP DEFAULT;

CREATE TABLE award_votes (
    award_id  uuid        NOT NULL REFERENCES award_proposals (id),
    member_id text        NOT NULL,
    vote      text        NOT NULL CHECK (vote IN ('for', 'against', 'abstain')),
    cast_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (award_id, member_id)
);
INSERT INTO award_votes (award_id, member_id, vote, cast_at)
SELECT p.id, v ->> 'member_id', v ->> 'vote', p.decided_at
  FROM award_proposals p, jsonb_array_elements(p.votes) AS v
ON CONFLICT DO NOTHING;
ALTER TABLE award_proposals DROP COLUMN votes, DROP COLUMN awarded;

-- At most one open proposal per initiative in a round, and an initiative is awarded once.
CREATE UNIQUE INDEX award_proposals_one_open ON award_proposals (round_id, initiative_id) WHERE status = 'open';
CREATE UNIQUE INDEX award_proposals_one_award ON award_proposals (initiative_id) WHERE status = 'awarded';
CREATE INDEX award_proposals_round ON award_proposals (round_id, proposed_at DESC);
CREATE INDEX award_proposals_open_initiative ON award_proposals (initiative_id) WHERE status = 'open';

-- A round's initiatives are listed newest approval first.
ALTER TABLE initiatives ADD COLUMN approved_at timestamptz;
UPDATE initiatives SET approved_at = updated_at;
ALTER TABLE initiatives ALTER COLUMN approved_at SET NOT NULL, ALTER COLUMN approved_at SET DEFAULT now();

-- The lists officials and initiators read, newest first.
CREATE INDEX rounds_newest ON rounds (created_at DESC);
CREATE INDEX expense_claims_round ON expense_claims (round_id, created_at DESC);
CREATE INDEX expense_claims_initiative ON expense_claims (initiative_id);
CREATE INDEX payouts_round ON payouts (round_id, created_at DESC);
