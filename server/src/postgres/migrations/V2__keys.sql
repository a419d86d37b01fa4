-- The OPRF keys of every replica, wrapped under the key-encryption key each
-- replica reads from its own file (never stored here), and the replicas'
-- heartbeats that let a rotation know who must be ready before it switches.

-- One row per key epoch. state 1 = announced (AnnounceNextKey), 2 = next
-- (a rotation published it; replicas build its table), 3 = current,
-- 4 = retired (its wrapped key erased). wrapped = nonce (12 bytes) ||
-- ChaCha20-Poly1305 ciphertext of the 32-byte seed, with the epoch, the
-- public key and the state as associated data.
CREATE TABLE key_epochs (
    epoch         BIGINT   PRIMARY KEY,
    public_key    BYTEA    NOT NULL CHECK (octet_length(public_key) = 32),
    state         SMALLINT NOT NULL CHECK (state IN (1, 2, 3, 4)),
    wrapped       BYTEA    CHECK (wrapped IS NULL OR octet_length(wrapped) = 60),
    created_unix  BIGINT   NOT NULL,
    switched_unix BIGINT,
    CHECK ((state = 4) = (wrapped IS NULL))
);
-- At most one current, one next and one announced key.
CREATE UNIQUE INDEX key_epochs_one_per_state ON key_epochs (state) WHERE state IN (1, 2, 3);

-- One row per running replica, refreshed every second: which epoch it
-- serves and which next epoch it has built.
CREATE TABLE key_replicas (
    replica       TEXT    PRIMARY KEY,
    serving_epoch BIGINT  NOT NULL,
    ready_epoch   BIGINT,
    seen          TIMESTAMPTZ NOT NULL DEFAULT now()
);
