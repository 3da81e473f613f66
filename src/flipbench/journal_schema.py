"""The journal's tables: what a flipbench journal is, and how to tell one from a foreign file."""

from __future__ import annotations

SCHEMA_VERSION = 1
# Columns without which a `runs`/`samples` table is not flipbench's (a foreign file).
CORE_COLUMNS = {
    "runs": {"run_id", "experiment", "model", "status", "config_json", "definition_json"},
    "samples": {"run_id", "condition", "sample_index", "status", "valid"},
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    model TEXT NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    config_json TEXT NOT NULL,
    definition_json TEXT NOT NULL,
    definition_hash TEXT NOT NULL,
    versions_json TEXT NOT NULL,
    message TEXT,
    pid INTEGER
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    condition TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    status TEXT NOT NULL,
    http_status INTEGER,
    request_json TEXT NOT NULL,
    response_json TEXT,
    content TEXT,
    finish_reason TEXT,
    answer TEXT,
    valid INTEGER NOT NULL,
    invalid_category TEXT,
    probs_json TEXT,
    coverage REAL,
    cost REAL,
    meta_json TEXT,
    latency_s REAL,
    created_at TEXT NOT NULL,
    UNIQUE (run_id, condition, sample_index)
);
CREATE INDEX IF NOT EXISTS samples_run ON samples (run_id, condition);
"""
# Paid calls are written here before they are sent and removed in the transaction that journals
# their reply; a row left behind by a process that died was paid for but never journaled, and
# counts against the run's budget (`Journal.spent`). Created on every writable open, so journals
# made before it existed get it too.
IN_FLIGHT_SCHEMA = """
CREATE TABLE IF NOT EXISTS in_flight (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    condition TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    lost INTEGER NOT NULL DEFAULT 0,
    counted_cost REAL
)
"""
# Each run's S remembered under a key of what it depends on (`journal_summaries`): a cache, not
# data, created on every writable open like `in_flight`.
SUMMARIES_SCHEMA = """
CREATE TABLE IF NOT EXISTS summaries (
    run_id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    summary_json TEXT NOT NULL,
    computed_at TEXT NOT NULL
)
"""
