-- slawatch collector store, schema version 1 (PRAGMA user_version); later steps are in sqlite.py MIGRATIONS.
-- Times are integer nanoseconds since the Unix epoch (UTC) unless named _unix.

CREATE TABLE IF NOT EXISTS agents (
    agent_id         TEXT PRIMARY KEY,
    first_seen_ns    INTEGER NOT NULL,
    last_seen_ns     INTEGER NOT NULL,
    software_version TEXT NOT NULL,
    boot_id          TEXT NOT NULL,
    hostname         TEXT NOT NULL,
    labels_json      TEXT NOT NULL
);

-- One row per stored batch: the dedupe key for resent batches.
CREATE TABLE IF NOT EXISTS batches (
    agent_id       TEXT NOT NULL,
    sequence_epoch INTEGER NOT NULL,
    sequence       INTEGER NOT NULL,
    received_ns    INTEGER NOT NULL,
    observations   INTEGER NOT NULL,
    PRIMARY KEY (agent_id, sequence_epoch, sequence)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS observations (
    id               INTEGER PRIMARY KEY,
    agent_id         TEXT NOT NULL,
    sequence_epoch   INTEGER NOT NULL,
    sequence         INTEGER NOT NULL,
    check_id         TEXT NOT NULL,
    kind             TEXT NOT NULL,     -- icmp, tcp, http ... (wire enum name, lower case)
    target           TEXT NOT NULL,
    start_ns         INTEGER NOT NULL,
    duration_ns      INTEGER NOT NULL,
    outcome          TEXT NOT NULL,     -- ok, timeout, refused, unreachable, failed, error
    error_class      TEXT NOT NULL,     -- none, connect_refused, echo_timeout ...
    error_detail     TEXT NOT NULL,
    packets_sent     INTEGER NOT NULL,
    packets_received INTEGER NOT NULL,
    rtt_min_ns       INTEGER,
    rtt_mean_ns      INTEGER,
    rtt_max_ns       INTEGER,
    rtt_stddev_ns    INTEGER,
    rtt_samples      BLOB               -- little-endian int64 nanoseconds, one per answer
);
CREATE INDEX IF NOT EXISTS observations_by_check
    ON observations (agent_id, check_id, start_ns);

CREATE TABLE IF NOT EXISTS heartbeats (
    agent_id          TEXT NOT NULL,
    received_ns       INTEGER NOT NULL,
    sent_ns           INTEGER NOT NULL,
    cpu_ratio         REAL NOT NULL,
    memory_used_ratio REAL NOT NULL,
    load1             REAL NOT NULL,
    boot_time_unix    INTEGER NOT NULL,
    agent_rss_bytes   INTEGER NOT NULL,
    agent_cpu_seconds REAL NOT NULL,
    checks_configured INTEGER NOT NULL,
    rounds_skipped    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS heartbeats_by_agent ON heartbeats (agent_id, received_ns);
