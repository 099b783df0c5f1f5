-- Enum CHECKs of three or more values as OR chains (same meaning).
-- SQLite (3.40) evaluates `x IN (three or more constants)` in a CHECK by
-- building a temporary B-tree (OpenEphemeral, ~90 KiB of allocations) for
-- every row written: a few microseconds on each audit row. These three
-- tables are written on request paths; users.role and signing_keys.status
-- (written rarely) keep their IN lists.
-- SQLite cannot alter a CHECK, so each table is rebuilt: new table, copy,
-- drop, rename, indexes (same names). No table references these three, so
-- foreign-key enforcement stays on. The runner wraps the file in one
-- transaction with its ledger row.

CREATE TABLE audit_events_new (
    id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    actor_id TEXT,
    actor_type TEXT NOT NULL,
    target_id TEXT,
    target_type TEXT,
    ip_address TEXT,
    user_agent TEXT,
    correlation_id TEXT,
    success INTEGER NOT NULL CHECK (success IN (0, 1)),
    failure_reason TEXT,
    metadata TEXT,
    created_at TEXT NOT NULL,
    CONSTRAINT pk_audit_events PRIMARY KEY (id),
    CONSTRAINT ck_audit_events_actor_type_allowed
        CHECK (actor_type = 'user' OR actor_type = 'service' OR actor_type = 'admin'
            OR actor_type = 'system')
) STRICT;
INSERT INTO audit_events_new (
    id, event_type, actor_id, actor_type, target_id, target_type, ip_address, user_agent,
    correlation_id, success, failure_reason, metadata, created_at)
SELECT
    id, event_type, actor_id, actor_type, target_id, target_type, ip_address, user_agent,
    correlation_id, success, failure_reason, metadata, created_at
FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE INDEX ix_audit_events_created_at ON audit_events (created_at);
CREATE INDEX ix_audit_events_event_type_created_at ON audit_events (event_type, created_at);
CREATE INDEX ix_audit_events_actor_id_created_at ON audit_events (actor_id, created_at);
CREATE INDEX ix_audit_events_target_id_created_at ON audit_events (target_id, created_at);

CREATE TABLE email_outbox_new (
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    to_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT,
    body_html TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    attempt_count INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    expires_at TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    CONSTRAINT pk_email_outbox PRIMARY KEY (id),
    CONSTRAINT ck_email_outbox_status_allowed
        CHECK (status = 'pending' OR status = 'sent' OR status = 'failed' OR status = 'abandoned')
) STRICT;
INSERT INTO email_outbox_new (
    id, kind, to_address, subject, body_text, body_html, status, attempt_count,
    next_attempt_at, expires_at, last_error, created_at, sent_at)
SELECT
    id, kind, to_address, subject, body_text, body_html, status, attempt_count,
    next_attempt_at, expires_at, last_error, created_at, sent_at
FROM email_outbox;
DROP TABLE email_outbox;
ALTER TABLE email_outbox_new RENAME TO email_outbox;
CREATE INDEX ix_email_outbox_due ON email_outbox (status, next_attempt_at);

CREATE TABLE webhook_deliveries_new (
    id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempt_count INTEGER NOT NULL DEFAULT 0,
    last_attempted_at TEXT,
    next_retry_at TEXT,
    response_status INTEGER,
    response_body TEXT,
    created_at TEXT NOT NULL,
    CONSTRAINT pk_webhook_deliveries PRIMARY KEY (id),
    CONSTRAINT fk_webhook_deliveries_endpoint_id_webhook_endpoints FOREIGN KEY (endpoint_id)
        REFERENCES webhook_endpoints (id) ON DELETE RESTRICT,
    CONSTRAINT ck_webhook_deliveries_status_allowed
        CHECK (status = 'pending' OR status = 'delivered' OR status = 'failed'
            OR status = 'abandoned')
) STRICT;
INSERT INTO webhook_deliveries_new (
    id, endpoint_id, event_type, payload, status, attempt_count, last_attempted_at,
    next_retry_at, response_status, response_body, created_at)
SELECT
    id, endpoint_id, event_type, payload, status, attempt_count, last_attempted_at,
    next_retry_at, response_status, response_body, created_at
FROM webhook_deliveries;
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_new RENAME TO webhook_deliveries;
CREATE INDEX ix_webhook_deliveries_endpoint_created
    ON webhook_deliveries (endpoint_id, created_at, id);
CREATE INDEX ix_webhook_deliveries_due ON webhook_deliveries (status, next_retry_at);
