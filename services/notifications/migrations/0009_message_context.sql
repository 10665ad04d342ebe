-- depends: 0008_webhook_failing_since
-- Messages name what they are about: the initiative (its title), the budget round (its name) and the area.
-- Budget rounds as the events describe them: a wallet's, a pledge's or a proposal's event names its round by id only.
CREATE TABLE rounds_known (
    round_id  uuid PRIMARY KEY,
    name      text NOT NULL,
    area_code text NOT NULL
);

-- A message stored before this change still renders, now naming its initiative where this service knows it:
-- a message of a vouchers event gets the title its templates now use ('' when the initiative is unknown, as for a
-- new message), and any message of an initiative gets the initiative's area when it kept none.
UPDATE notifications n
SET params = n.params || jsonb_build_object('initiative_title', coalesce(
    (SELECT k.title FROM initiatives_known k WHERE k.initiative_id::text = n.params->>'initiative_id'), ''))
WHERE n.kind IN ('pledge_confirmed', 'pledge_returned', 'expense_to_decide', 'expense_approved', 'expense_declined',
                 'payout_settled', 'initiative_awarded', 'award_to_vote', 'award_declined')
  AND n.params->'initiative_title' IS NULL;

UPDATE notifications n
SET params = n.params || jsonb_build_object('area_code', k.area_code)
FROM initiatives_known k
WHERE k.initiative_id::text = n.params->>'initiative_id' AND n.params->'area_code' IS NULL;
