-- depends: 0002_co_initiator_invitations
-- What the service holds about one resident is found without reading whole tables: their supports, their volunteer
-- offers and the transitions they made (a resident's export, and forgetting them).
CREATE INDEX supports_resident ON supports (resident_id);
CREATE INDEX volunteers_resident ON volunteers (resident_id);
CREATE INDEX transitions_actor ON transitions (actor_id);
