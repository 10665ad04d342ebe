-- depends: 0002_steering_groups_and_award_votes
-- The tables every pledge and every wallet issuance inserts into no longer carry foreign keys to `rounds`, and
-- journal lines none to their entry and account. Each such key cost a trigger per inserted row and, for `rounds`,
-- a KEY SHARE lock on the round's one row from every concurrent pledge (a MultiXact on one hot row). What the keys
-- guaranteed holds instead by construction and is verified by the ledger check (`Ledger.check` reports accounts,
-- journal entries and pledges of a round that does not exist, and journal lines whose entry or account does not
-- exist or belongs to another round):
-- - rows are only ever inserted with the ids of rows the same transaction read, locked or created;
-- - what they point to can never go away: rounds and accounts cannot be deleted or truncated, nor their ids
--   changed; journal entries and lines were append-only already and now cannot be truncated either.

ALTER TABLE accounts DROP CONSTRAINT accounts_round_id_fkey;
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_round_id_fkey;
ALTER TABLE journal_lines DROP CONSTRAINT journal_lines_entry_id_fkey;
ALTER TABLE journal_lines DROP CONSTRAINT journal_lines_account_id_fkey;
ALTER TABLE pledges DROP CONSTRAINT pledges_round_id_fkey;

CREATE FUNCTION ledger_row_is_permanent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger keeps its % rows and their ids: % refused', TG_TABLE_NAME, TG_OP;
END $$;

CREATE TRIGGER rounds_permanent BEFORE DELETE OR UPDATE OF id ON rounds
    FOR EACH ROW EXECUTE FUNCTION ledger_row_is_permanent();
CREATE TRIGGER rounds_not_truncated BEFORE TRUNCATE ON rounds
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_row_is_permanent();
CREATE TRIGGER accounts_permanent BEFORE DELETE OR UPDATE OF id, round_id ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_row_is_permanent();
CREATE TRIGGER accounts_not_truncated BEFORE TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_row_is_permanent();
CREATE TRIGGER journal_entries_not_truncated BEFORE TRUNCATE ON journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION journal_is_append_only();
CREATE TRIGGER journal_lines_not_truncated BEFORE TRUNCATE ON journal_lines
    FOR EACH STATEMENT EXECUTE FUNCTION journal_is_append_only();

-- An account is found by (round, kind, owner): compared byte by byte, as the "C" collation does, each insert into
-- that unique key costs a third less than with the database's linguistic collation. Owners are ids (resident ids,
-- initiative ids), never sorted for people; UTF-8 byte order is code point order.
ALTER TABLE accounts ALTER COLUMN kind TYPE text COLLATE "C", ALTER COLUMN owner TYPE text COLLATE "C";
