-- depends: 0005_webhook_pseudonyms
-- A stored message keeps what its templates use and what it links to (`initiative_id`, `round_id`), no longer its
-- whole event: the initiators, the supporter, the volunteer, the official or member who acted, who voted how.
-- The lists are what `notifications.domain.recipients.params` kept per kind when this migration was written; every
-- message, read or unread, sent or waiting, still renders from what stays.
CREATE TEMPORARY TABLE kept_params (kind text PRIMARY KEY, keys text[] NOT NULL) ON COMMIT DROP;
INSERT INTO kept_params (kind, keys) VALUES
    ('award_declined', '{amount_cents,initiative_id,initiative_title,quorum,round_id,votes_against,votes_cast,votes_for}'),
    ('award_to_vote', '{amount_cents,initiative_id,initiative_title,quorum,round_id}'),
    ('changes_requested', '{comment,initiative_id,round_id,title}'),
    ('co_initiator_joined', '{initiative_id,round_id,title}'),
    ('expense_approved', '{amount_cents,initiative_id,round_id}'),
    ('expense_declined', '{amount_cents,initiative_id,left_cents,reason,round_id}'),
    ('expense_to_decide', '{amount_cents,claim_id,initiative_id,invoice_reference,round_id,supplier}'),
    ('initiative_approved', '{approved_amount_cents,initiative_id,round_id,title}'),
    ('initiative_awarded', '{awarded_amount_cents,initiative_id,initiative_title,mechanism,round_id}'),
    ('initiative_cancelled', '{initiative_id,reason,round_id,title}'),
    ('initiative_completed', '{initiative_id,round_id,spent_amount_cents,title,what_was_done}'),
    ('initiative_expired', '{initiative_id,reason,round_id,title}'),
    ('initiative_in_review', '{area_code,initiative_id,round_id,title}'),
    ('initiative_rejected', '{initiative_id,reason,round_id,title}'),
    ('initiative_started', '{initiative_id,round_id,title}'),
    ('initiative_submitted', '{initiative_id,requested_amount_cents,round_id,status,support_deadline,support_threshold,title}'),
    ('initiative_withdrawn', '{initiative_id,round_id,title}'),
    ('new_initiative_in_area', '{initiative_id,round_id,summary,title}'),
    ('new_supporter', '{initiative_id,round_id,support_count,title}'),
    ('new_volunteer', '{initiative_id,round_id,title,volunteer_count}'),
    ('payout_settled', '{amount_cents,initiative_id,payout_reference,round_id}'),
    ('pledge_confirmed', '{amount_cents,initiative_id,requested_amount_cents,round_id,wallet_balance_cents}'),
    ('pledge_returned', '{amount_cents,initiative_id,reason,round_id,wallet_balance_cents}'),
    ('round_opened', '{area_code,closes_at,initiative_id,name,round_id,total_budget_cents,voucher_amount_cents}'),
    ('round_results', '{initiative_id,name,round_id,summary}'),
    ('steering_group_chair', '{area_code,initiative_id,round_id}'),
    ('steering_group_joined', '{area_code,initiative_id,round_id}'),
    ('steering_group_left', '{area_code,initiative_id,round_id}'),
    ('support_withdrawn', '{initiative_id,round_id,support_count,title}'),
    ('threshold_reached', '{initiative_id,round_id,support_count,title}'),
    ('wallet_issued', '{initiative_id,round_id,voucher_amount_cents}'),
    ('webhook_disabled', '{reason,subscription_id,url}');

UPDATE notifications n
SET params = (SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb) FROM jsonb_each(n.params) WHERE key = ANY(k.keys))
FROM kept_params k
WHERE k.kind = n.kind AND EXISTS (SELECT 1 FROM jsonb_object_keys(n.params) AS key WHERE NOT key = ANY(k.keys));
