-- Conference chat: whether participants may send text messages to
-- everyone in the conference (on unless turned off).
-- Portable SQL: runs on SQLite and PostgreSQL alike.
ALTER TABLE conferences ADD COLUMN chat BOOLEAN NOT NULL DEFAULT TRUE;
