-- SIP: digest credentials (RFC 7616 HA1 per algorithm, realm = server name;
-- the password itself is never stored) and registrations (RFC 3261 §10).
-- Portable SQL: runs on SQLite and PostgreSQL alike.
ALTER TABLE accounts ADD COLUMN digest_md5 TEXT;
ALTER TABLE accounts ADD COLUMN digest_sha256 TEXT;

CREATE TABLE sip_bindings (
    user_name  TEXT NOT NULL REFERENCES accounts (user_name) ON DELETE CASCADE,
    contact    TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    call_id    TEXT NOT NULL,
    cseq       BIGINT NOT NULL,
    q_milli    INTEGER,
    source     TEXT,
    transport  TEXT NOT NULL,
    user_agent TEXT,
    instance   TEXT,
    PRIMARY KEY (user_name, contact)
);
CREATE INDEX sip_bindings_by_expiry ON sip_bindings (expires_at);
