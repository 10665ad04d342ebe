-- depends: 0001_public_read_model
-- Sessions of people signed in to the portal's pages, and of visitors half-way through signing in. The cookie holds
-- a random token; only its SHA-256 is kept here, so these rows do not let anyone act as the person. The access
-- token stays on the server, never in the browser, and the row goes on sign-out or when it expires.
CREATE TABLE web_sessions (
    id_hash          text        PRIMARY KEY,
    csrf_token       text        NOT NULL,
    subject          text,
    display_name     text,
    roles            text[]      NOT NULL DEFAULT '{}',
    areas            text[]      NOT NULL DEFAULT '{}',
    access_token     text,
    id_token         text,
    sign_in_state    jsonb       NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
