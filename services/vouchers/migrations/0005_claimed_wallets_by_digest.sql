-- depends: 0004_journal_references_of_forgotten_residents
-- The journal is append-only again without exception. A wallet a resident claimed themselves is referenced by the
-- SHA-256 of their id (`<round>:claim:<64 hex>`, see `vouchers.domain.pledges.claimed_wallet_reference`), so
-- forgetting them changes nothing in the journal, and the reference stays taken: nobody gets a second wallet in a
-- round by being forgotten in between. The references booked before are converted once, here, with the guard lifted
-- for this statement only; one already rewritten to a tombstone stays as it is.
CREATE OR REPLACE FUNCTION journal_entry_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END $$;

ALTER TABLE journal_entries DISABLE TRIGGER journal_entries_append_only;
UPDATE journal_entries
   SET reference = round_id::text || ':claim:'
                   || encode(sha256(convert_to(substr(reference, length(round_id::text) + 8), 'UTF8')), 'hex')
 WHERE kind = 'wallets_issued'
   AND reference LIKE round_id::text || ':claim:%'
   AND substr(reference, length(round_id::text) + 8) !~ '^(forgotten-[0-9a-f]{32}|[0-9a-f]{64})$';
ALTER TABLE journal_entries ENABLE TRIGGER journal_entries_append_only;
