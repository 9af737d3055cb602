"""The SQLite statements that create a state database of schema version FOR_VERSION.

GENERATED from publisher/state/schema.py (schema.sqlite_ddl): do not edit. After a schema
change, regenerate with

    PUBLISHER_REGENERATE_DDL=1 .venv/bin/python -m pytest tests/test_cache_sqlite3.py -q

cache_sqlite3.Sqlite3CacheStore.create runs them on a cold build (no SQLAlchemy import);
tests/test_cache_sqlite3.py fails while this file and the schema differ."""

FOR_VERSION = 8

STATEMENTS = (
    'CREATE TABLE bounce_events (\n\tid INTEGER NOT NULL, \n\tsubscriber_id INTEGER NOT NULL, \n\tkind VARCHAR(16) NOT NULL, \n\tdigest_id INTEGER, \n\tstatus VARCHAR(16) NOT NULL, \n\tdetail TEXT NOT NULL, \n\tsource VARCHAR(32) NOT NULL, \n\tevent_key VARCHAR(200), \n\treceived_at DATETIME NOT NULL, \n\tPRIMARY KEY (id), \n\tUNIQUE (event_key)\n)',
    'CREATE INDEX bounce_events_subscriber ON bounce_events (subscriber_id, id)',
    'CREATE TABLE digests (\n\tid INTEGER NOT NULL, \n\tkind VARCHAR(16) NOT NULL, \n\tcreated_at DATETIME NOT NULL, \n\tfinished_at DATETIME, \n\tstatus VARCHAR(16) NOT NULL, \n\tsubject TEXT NOT NULL, \n\thtml TEXT NOT NULL, \n\ttext TEXT NOT NULL, \n\tpost_ids TEXT NOT NULL, \n\tPRIMARY KEY (id)\n)',
    'CREATE TABLE meta (\n\t"key" VARCHAR(64) NOT NULL, \n\tvalue TEXT NOT NULL, \n\tPRIMARY KEY ("key")\n)',
    'CREATE TABLE posts (\n\tid TEXT NOT NULL, \n\turl TEXT NOT NULL, \n\tsource TEXT, \n\ttitle TEXT NOT NULL, \n\tpublished_at DATETIME NOT NULL, \n\tfeatured BOOLEAN NOT NULL, \n\tfirst_seen_at DATETIME NOT NULL, \n\tannounced_at DATETIME, \n\tannounced_digest_id INTEGER, \n\talert_due BOOLEAN NOT NULL, \n\talerted_at DATETIME, \n\tPRIMARY KEY (id)\n)',
    'CREATE TABLE render_cache (\n\t"key" VARCHAR(64) NOT NULL, \n\thtml TEXT NOT NULL, \n\tused_at DATETIME NOT NULL, \n\tPRIMARY KEY ("key")\n)',
    'CREATE TABLE scan_cache (\n\tpath TEXT NOT NULL, \n\tsize BIGINT NOT NULL, \n\tmtime_ns BIGINT NOT NULL, \n\tcontent_hash VARCHAR(64) NOT NULL, \n\tfingerprint VARCHAR(64) NOT NULL, \n\tpost TEXT, \n\tproblem TEXT, \n\tPRIMARY KEY (path)\n)',
    'CREATE TABLE sender_leases (\n\tsender VARCHAR(120) NOT NULL, \n\tdigest_id INTEGER NOT NULL, \n\trenewed_at DATETIME NOT NULL, \n\texpires_at DATETIME NOT NULL, \n\tPRIMARY KEY (sender)\n)',
    'CREATE TABLE subscribers (\n\tid INTEGER NOT NULL, \n\temail TEXT NOT NULL, \n\temail_key TEXT NOT NULL, \n\tname TEXT NOT NULL, \n\tstatus VARCHAR(16) NOT NULL, \n\ttoken VARCHAR(64) NOT NULL, \n\tconfirm_token VARCHAR(64), \n\tcreated_at DATETIME NOT NULL, \n\tupdated_at DATETIME NOT NULL, \n\tconfirmed_at DATETIME, \n\tconfirm_sent_at DATETIME, \n\tlast_reply TEXT, \n\ttopics TEXT NOT NULL, \n\tpaused_until DATETIME, \n\tPRIMARY KEY (id), \n\tUNIQUE (email_key), \n\tUNIQUE (token), \n\tUNIQUE (confirm_token)\n)',
    'CREATE TABLE used_forms (\n\tnonce VARCHAR(64) NOT NULL, \n\tused_at DATETIME NOT NULL, \n\tPRIMARY KEY (nonce)\n)',
    'CREATE INDEX used_forms_used_at ON used_forms (used_at)',
    'CREATE TABLE web_limits (\n\t"key" VARCHAR(400) NOT NULL, \n\thour BIGINT NOT NULL, \n\tcount INTEGER NOT NULL, \n\tPRIMARY KEY ("key")\n)',
    'CREATE INDEX web_limits_hour ON web_limits (hour)',
    'CREATE TABLE archive_issues (\n\tdigest_id INTEGER NOT NULL, \n\tposts TEXT NOT NULL, \n\tPRIMARY KEY (digest_id), \n\tFOREIGN KEY(digest_id) REFERENCES digests (id)\n)',
    'CREATE TABLE deliveries (\n\tdigest_id INTEGER NOT NULL, \n\tsubscriber_id INTEGER NOT NULL, \n\tstatus VARCHAR(16) NOT NULL, \n\tattempts INTEGER NOT NULL, \n\tlast_code INTEGER, \n\tlast_reply TEXT, \n\tupdated_at DATETIME NOT NULL, \n\tclaimed_by VARCHAR(120), \n\tclaimed_at DATETIME, \n\tvariant INTEGER NOT NULL, \n\tPRIMARY KEY (digest_id, subscriber_id), \n\tFOREIGN KEY(digest_id) REFERENCES digests (id)\n)',
    'CREATE INDEX deliveries_owed ON deliveries (digest_id, status, subscriber_id)',
    'CREATE TABLE digest_variants (\n\tdigest_id INTEGER NOT NULL, \n\tvariant INTEGER NOT NULL, \n\tsubject TEXT NOT NULL, \n\thtml TEXT NOT NULL, \n\ttext TEXT NOT NULL, \n\tpost_ids TEXT NOT NULL, \n\tPRIMARY KEY (digest_id, variant), \n\tFOREIGN KEY(digest_id) REFERENCES digests (id)\n)',
)
