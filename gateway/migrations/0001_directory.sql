-- Accounts, conferences, conference members, address book, settings.
-- Portable SQL: runs on SQLite and PostgreSQL alike.
CREATE TABLE accounts (
    user_name     TEXT PRIMARY KEY,
    account_type  TEXT NOT NULL CHECK (account_type IN ('ws', 'sip', 'h323', 'loop')),
    display_name  TEXT NOT NULL,
    password_hash TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE conferences (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    owner            TEXT REFERENCES accounts (user_name) ON DELETE SET NULL,
    closed           BOOLEAN NOT NULL,
    allow_anonymous  BOOLEAN NOT NULL,
    pin              TEXT,
    lobby            BOOLEAN NOT NULL,
    max_participants INTEGER NOT NULL,
    permanent        BOOLEAN NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE conference_members (
    conference_id TEXT NOT NULL REFERENCES conferences (id) ON DELETE CASCADE,
    user_name     TEXT NOT NULL REFERENCES accounts (user_name) ON DELETE CASCADE,
    role          TEXT NOT NULL CHECK (role IN ('moderator', 'participant')),
    PRIMARY KEY (conference_id, user_name)
);
CREATE INDEX conference_members_by_user ON conference_members (user_name);

CREATE TABLE address_book (
    owner        TEXT NOT NULL REFERENCES accounts (user_name) ON DELETE CASCADE,
    target       TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (owner, target)
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
