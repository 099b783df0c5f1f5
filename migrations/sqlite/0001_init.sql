-- authd schema, SQLite dialect (data-model.md §1-§9, §14).
-- Same table, column, constraint and index names as migrations/postgres/.
-- Logical types: uuid/timestamp/inet/json/text[] are TEXT (timestamps as
-- fixed-width 'YYYY-MM-DDTHH:MM:SS.ffffffZ', text[] as a JSON array),
-- bool is INTEGER 0/1, enums are TEXT with a CHECK. STRICT tables reject
-- values that do not fit the declared type. No timestamp defaults: the
-- service writes every timestamp itself. schema_migrations belongs to the
-- runner (src/store/migrate.c).

CREATE TABLE users (
    id TEXT NOT NULL,
    email TEXT NOT NULL,
    password_hash TEXT,
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    tenant_id TEXT,
    role TEXT NOT NULL DEFAULT 'user',
    email_verified INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1)),
    email_verify_token_hash TEXT,
    email_verify_token_expires TEXT,
    email_otp_enabled INTEGER NOT NULL DEFAULT 0 CHECK (email_otp_enabled IN (0, 1)),
    password_reset_token_hash TEXT,
    password_reset_token_expires TEXT,
    CONSTRAINT pk_users PRIMARY KEY (id),
    CONSTRAINT ck_users_role_allowed CHECK (role IN ('admin', 'user', 'service'))
) STRICT;
CREATE UNIQUE INDEX uq_users_email ON users (email);
CREATE UNIQUE INDEX uq_users_email_lower ON users (lower(email));
CREATE INDEX ix_users_email_deleted_at ON users (email, deleted_at);

CREATE TABLE user_identities (
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    provider_user_id TEXT NOT NULL,
    email TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    tenant_id TEXT,
    CONSTRAINT pk_user_identities PRIMARY KEY (id),
    CONSTRAINT fk_user_identities_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE RESTRICT,
    CONSTRAINT uq_user_identities_provider_subject UNIQUE (provider, provider_user_id)
) STRICT;
CREATE INDEX ix_user_identities_user_id_deleted_at ON user_identities (user_id, deleted_at);

CREATE TABLE sessions (
    session_id TEXT NOT NULL,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    hashed_refresh_token TEXT NOT NULL,
    auth_time TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    tenant_id TEXT,
    ip_address TEXT,
    user_agent TEXT,
    last_seen_at TEXT,
    revoke_reason TEXT,
    is_suspicious INTEGER NOT NULL DEFAULT 0 CHECK (is_suspicious IN (0, 1)),
    suspicious_reasons TEXT NOT NULL DEFAULT '[]',
    CONSTRAINT pk_sessions PRIMARY KEY (session_id),
    CONSTRAINT uq_sessions_id UNIQUE (id),
    CONSTRAINT fk_sessions_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE RESTRICT,
    CONSTRAINT uq_sessions_hashed_refresh_token UNIQUE (hashed_refresh_token)
) STRICT;
CREATE INDEX ix_sessions_id ON sessions (id);
CREATE INDEX ix_sessions_user_id_deleted_at ON sessions (user_id, deleted_at);
CREATE INDEX ix_sessions_user_created ON sessions (user_id, created_at, id);
CREATE INDEX ix_sessions_suspicious_active ON sessions (created_at, id)
    WHERE is_suspicious AND revoked_at IS NULL;

CREATE TABLE api_keys (
    id TEXT NOT NULL,
    user_id TEXT,
    name TEXT NOT NULL,
    service TEXT NOT NULL,
    hashed_key TEXT NOT NULL,
    key_prefix TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    tenant_id TEXT,
    CONSTRAINT pk_api_keys PRIMARY KEY (id),
    CONSTRAINT fk_api_keys_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE RESTRICT,
    CONSTRAINT uq_api_keys_hashed_key UNIQUE (hashed_key)
) STRICT;
CREATE UNIQUE INDEX ix_api_keys_hashed_key ON api_keys (hashed_key);
CREATE INDEX ix_api_keys_user_id_deleted_at ON api_keys (user_id, deleted_at);

CREATE TABLE oauth_clients (
    id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret_hash TEXT NOT NULL,
    client_secret_prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'service',
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    token_ttl_seconds INTEGER NOT NULL DEFAULT 3600,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    tenant_id TEXT,
    CONSTRAINT pk_oauth_clients PRIMARY KEY (id),
    CONSTRAINT uq_oauth_clients_client_id UNIQUE (client_id),
    CONSTRAINT ck_oauth_clients_ck_oauth_clients_role_allowed CHECK (role IN ('service'))
) STRICT;
CREATE INDEX ix_oauth_clients_client_id_deleted_at ON oauth_clients (client_id, deleted_at);

CREATE TABLE signing_keys (
    id TEXT NOT NULL,
    kid TEXT NOT NULL,
    public_key TEXT NOT NULL,
    private_key TEXT NOT NULL,
    status TEXT NOT NULL,
    activated_at TEXT NOT NULL,
    retired_at TEXT,
    retire_after TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    tenant_id TEXT,
    CONSTRAINT pk_signing_keys PRIMARY KEY (id),
    CONSTRAINT uq_signing_keys_kid UNIQUE (kid),
    CONSTRAINT ck_signing_keys_status_allowed CHECK (status IN ('active', 'retiring', 'retired'))
) STRICT;
CREATE INDEX ix_signing_keys_status_deleted_at ON signing_keys (status, deleted_at);
CREATE UNIQUE INDEX uq_signing_keys_single_active ON signing_keys (status)
    WHERE status = 'active' AND deleted_at IS NULL;

CREATE TABLE audit_events (
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
    CONSTRAINT ck_audit_events_actor_type_allowed CHECK (actor_type IN ('user', 'service', 'admin', 'system'))
) STRICT;
CREATE INDEX ix_audit_events_created_at ON audit_events (created_at);
CREATE INDEX ix_audit_events_event_type_created_at ON audit_events (event_type, created_at);
CREATE INDEX ix_audit_events_actor_id_created_at ON audit_events (actor_id, created_at);
CREATE INDEX ix_audit_events_target_id_created_at ON audit_events (target_id, created_at);

CREATE TABLE webhook_endpoints (
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events TEXT NOT NULL DEFAULT '[]',
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    tenant_id TEXT,
    CONSTRAINT pk_webhook_endpoints PRIMARY KEY (id)
) STRICT;
CREATE INDEX ix_webhook_endpoints_is_active_deleted_at ON webhook_endpoints (is_active, deleted_at);

CREATE TABLE webhook_deliveries (
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
        CHECK (status IN ('pending', 'delivered', 'failed', 'abandoned'))
) STRICT;
CREATE INDEX ix_webhook_deliveries_endpoint_created
    ON webhook_deliveries (endpoint_id, created_at, id);
CREATE INDEX ix_webhook_deliveries_due ON webhook_deliveries (status, next_retry_at);

CREATE TABLE kv_entries (
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires_at TEXT,
    CONSTRAINT pk_kv_entries PRIMARY KEY (key)
) STRICT;
CREATE INDEX ix_kv_entries_expires_at ON kv_entries (expires_at);

CREATE TABLE email_outbox (
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
        CHECK (status IN ('pending', 'sent', 'failed', 'abandoned'))
) STRICT;
CREATE INDEX ix_email_outbox_due ON email_outbox (status, next_attempt_at);
