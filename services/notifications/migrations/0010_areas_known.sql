-- depends: 0009_message_context
-- The names of areas as the initiatives service's registry tells them (AreaRegistered): messages show an area by
-- its name, and by its code where it is not (yet) known.
CREATE TABLE areas_known (
    code text PRIMARY KEY,
    name text NOT NULL,
    kind text NOT NULL
);
