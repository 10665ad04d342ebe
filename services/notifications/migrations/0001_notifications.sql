-- Contact data lives only here: residents register it themselves; events carry pseudonymous ids only.
CREATE TABLE contact_details (
    resident_id text PRIMARY KEY,
    email       text        NOT NULL,
    language    text        NOT NULL DEFAULT 'nl' CHECK (language IN ('nl', 'en')),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE preferences (
    resident_id   text PRIMARY KEY,
    email_enabled boolean     NOT NULL DEFAULT true,
    frequency     text        NOT NULL DEFAULT 'immediate' CHECK (frequency IN ('immediate', 'daily', 'weekly')),
    muted_kinds   text[]      NOT NULL DEFAULT '{}',
    last_digest_at timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE area_follows (
    resident_id text NOT NULL,
    area_code   text NOT NULL,
    PRIMARY KEY (resident_id, area_code)
);
CREATE INDEX area_follows_area ON area_follows (area_code);

-- Officials register like residents; the areas they are responsible for come from their token.
CREATE TABLE official_areas (
    official_id text NOT NULL,
    area_code   text NOT NULL,
    PRIMARY KEY (official_id, area_code)
);
CREATE INDEX official_areas_area ON official_areas (area_code);

-- Initiatives as the events describe them (vouchers events name an initiative by id only).
CREATE TABLE initiatives_known (
    initiative_id uuid PRIMARY KEY,
    title         text NOT NULL,
    area_code     text NOT NULL
);

-- Who is involved in an initiative, learned from the events.
CREATE TABLE initiative_people (
    initiative_id uuid NOT NULL,
    resident_id   text NOT NULL,
    role          text NOT NULL CHECK (role IN ('initiator', 'supporter', 'volunteer')),
    PRIMARY KEY (initiative_id, resident_id, role)
);

-- One row per message to one recipient on one channel; the unique key makes a redelivered event harmless.
CREATE TABLE notifications (
    id              uuid PRIMARY KEY,
    dedup_key       text        NOT NULL,
    recipient_id    text        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('email', 'inbox')),
    kind            text        NOT NULL,
    params          jsonb       NOT NULL,
    source_event_id uuid,
    status          text        NOT NULL CHECK (status IN ('pending', 'digest', 'sent', 'failed', 'delivered')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    digest_id       uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    read_at         timestamptz,
    UNIQUE (dedup_key, recipient_id, channel)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_digest ON notifications (recipient_id, created_at) WHERE status = 'digest';
CREATE INDEX notifications_inbox ON notifications (recipient_id, created_at DESC) WHERE channel = 'inbox';
