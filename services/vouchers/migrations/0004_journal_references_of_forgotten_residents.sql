-- depends: 0003_ledger_without_hot_foreign_keys
-- A resident who asked to be forgotten keeps no trace in the ledger but a tombstone (see `vouchers.service.privacy`).
-- One journal reference names a resident: that of a wallet they claimed themselves (`<round>:claim:<resident id>`).
-- Forgetting them rewrites it with their tombstone (`forgotten-` and 32 hex digits). Journal entries stay append-only
-- in every other way: an update may change the reference only, only to one that names a tombstone, and only where
-- the old one named none; a delete is refused, and journal lines are never changed at all.
CREATE FUNCTION journal_entry_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (NEW.id, NEW.round_id, NEW.kind, NEW.created_at) = (OLD.id, OLD.round_id, OLD.kind, OLD.created_at)
       AND NEW.reference ~ 'forgotten-[0-9a-f]{32}' AND OLD.reference !~ 'forgotten-[0-9a-f]{32}' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the journal is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END $$;

DROP TRIGGER journal_entries_append_only ON journal_entries;
CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION journal_entry_is_append_only();
