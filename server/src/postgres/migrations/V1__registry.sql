-- The registry in PostgreSQL: users, the change feed every replica follows,
-- and the contacts-only allow-lists. Numbers are their E.164 digits.

CREATE TABLE users (
    number       BIGINT  PRIMARY KEY,
    label        BYTEA   NOT NULL CHECK (octet_length(label) <= 64),
    discoverable BOOLEAN NOT NULL
);

-- One row per committed change, numbered without gaps in commit order:
-- every writer takes the next numbers from feed_head under its row lock,
-- held until it commits, so a reader that has seen change n has seen every
-- change before it. kind 1 = user upserted (label, discoverable set),
-- 2 = user removed, 3 = allow-list stored (list set), 4 = allow-list removed.
CREATE TABLE changes (
    seq          BIGINT   PRIMARY KEY,
    at_unix      BIGINT   NOT NULL,
    kind         SMALLINT NOT NULL CHECK (kind IN (1, 2, 3, 4)),
    number       BIGINT   NOT NULL,
    label        BYTEA,
    discoverable BOOLEAN,
    list         BYTEA,
    CHECK ((kind = 1) = (label IS NOT NULL AND discoverable IS NOT NULL)),
    CHECK ((kind = 3) = (list IS NOT NULL))
);
CREATE INDEX changes_at_unix ON changes (at_unix);

-- The number the next change gets; only grows (pruning keeps it).
CREATE TABLE feed_head (
    id       BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    next_seq BIGINT  NOT NULL CHECK (next_seq >= 1)
);
INSERT INTO feed_head (id, next_seq) VALUES (TRUE, 1);

-- Contacts-only allow-lists: the StoredList encoding
-- (0x01 || issued_at BE64 || packed records), one per contacts-only number.
CREATE TABLE allow_lists (
    number BIGINT PRIMARY KEY,
    list   BYTEA  NOT NULL
);
