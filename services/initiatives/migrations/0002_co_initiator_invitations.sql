-- depends: 0001_initiatives
-- Co-initiators join by invitation: the owner invites, the resident accepts. `co_initiators` holds only
-- those who accepted (the co-initiators added before invitations existed count as accepted);
-- `invited_co_initiators` the open invitations, in the order they were made.
ALTER TABLE initiatives ADD COLUMN invited_co_initiators text[] NOT NULL DEFAULT '{}';
