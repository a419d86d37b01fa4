-- When each change was written, in microseconds since the Unix epoch by
-- the database's clock, so a replica can report how long a change took to
-- reach it (the cds_feed_lag_seconds histogram). Rows written before this
-- migration have none.
ALTER TABLE changes ADD COLUMN written_us BIGINT;
ALTER TABLE changes ALTER COLUMN written_us
    SET DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT;
