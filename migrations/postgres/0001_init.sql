-- authd schema, PostgreSQL dialect (data-model.md §1-§9, §14): the target
-- state of revision 20260416_0013 plus our own tables (kv_entries,
-- email_outbox). Same table, column, constraint and index names as
-- migrations/sqlite/. Logical types: uuid, timestamptz, boolean,
-- varchar(n), jsonb, varchar[], inet, named enums. No timestamp defaults:
-- the service writes every timestamp itself. schema_migrations belongs to
-- the runner (src/store/migrate.c).

CREATE TYPE signing_key_status AS ENUM ('active', 'retiring', 'retired');
CREATE TYPE audit_actor_type AS ENUM ('user', 'service', 'admin', 'system');

CREATE TABLE users (
    id uuid NOT NULL,
    email varchar(320) NOT NULL,
    password_hash varchar(255),
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    tenant_id uuid,
    role varchar(16) NOT NULL DEFAULT 'user',
    email_verified boolean NOT NULL DEFAULT false,
    email_verify_token_hash varchar(64),
    email_verify_token_expires timestamptz,
    email_otp_enabled boolean NOT NULL DEFAULT false,
    password_reset_token_hash varchar(64),
    password_reset_token_expires timestamptz,
    CONSTRAINT pk_users PRIMARY KEY (id),
    CONSTRAINT ck_users_role_allowed CHECK (role IN ('admin', 'user', 'service'))
);
CREATE UNIQUE INDEX uq_users_email ON users (email);
CREATE UNIQUE INDEX uq_users_email_lower ON users (lower(email));
CREATE INDEX ix_users_email_deleted_at ON users (email, deleted_at);

CREATE TABLE user_identities (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    provider varchar(50) NOT NULL,
    provider_user_id varchar(255) NOT NULL,
    email varchar(320),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    tenant_id uuid,
    CONSTRAINT pk_user_identities PRIMARY KEY (id),
    CONSTRAINT fk_user_identities_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE RESTRICT,
    CONSTRAINT uq_user_identities_provider_subject UNIQUE (provider, provider_user_id)
);
CREATE INDEX ix_user_identities_user_id_deleted_at ON user_identities (user_id, deleted_at);

CREATE TABLE sessions (
    session_id uuid NOT NULL,
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    hashed_refresh_token varchar(64) NOT NULL,
    auth_time timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    tenant_id uuid,
    ip_address varchar(45),
    user_agent varchar(512),
    last_seen_at timestamptz,
    revoke_reason varchar(64),
    is_suspicious boolean NOT NULL DEFAULT false,
    suspicious_reasons jsonb NOT NULL DEFAULT '[]'::jsonb,
    CONSTRAINT pk_sessions PRIMARY KEY (session_id),
    CONSTRAINT uq_sessions_id UNIQUE (id),
    CONSTRAINT fk_sessions_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE RESTRICT,
    CONSTRAINT uq_sessions_hashed_refresh_token UNIQUE (hashed_refresh_token)
);
CREATE INDEX ix_sessions_id ON sessions (id);
CREATE INDEX ix_sessions_user_id_deleted_at ON sessions (user_id, deleted_at);
CREATE INDEX ix_sessions_user_created ON sessions (user_id, created_at, id);
CREATE INDEX ix_sessions_suspicious_active ON sessions (created_at, id)
    WHERE is_suspicious AND revoked_at IS NULL;

CREATE TABLE api_keys (
    id uuid NOT NULL,
    user_id uuid,
    name varchar(128) NOT NULL,
    service varchar(128) NOT NULL,
    hashed_key varchar(64) NOT NULL,
    key_prefix varchar(8) NOT NULL,
    scope varchar(128) NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    tenant_id uuid,
    CONSTRAINT pk_api_keys PRIMARY KEY (id),
    CONSTRAINT fk_api_keys_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE RESTRICT,
    CONSTRAINT uq_api_keys_hashed_key UNIQUE (hashed_key)
);
CREATE UNIQUE INDEX ix_api_keys_hashed_key ON api_keys (hashed_key);
CREATE INDEX ix_api_keys_user_id_deleted_at ON api_keys (user_id, deleted_at);

CREATE TABLE oauth_clients (
    id uuid NOT NULL,
    client_id varchar(255) NOT NULL,
    client_secret_hash varchar(64) NOT NULL,
    client_secret_prefix varchar(8) NOT NULL,
    name varchar(255) NOT NULL,
    scopes varchar[] NOT NULL,
    role varchar(16) NOT NULL DEFAULT 'service',
    is_active boolean NOT NULL DEFAULT true,
    token_ttl_seconds integer NOT NULL DEFAULT 3600,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    tenant_id uuid,
    CONSTRAINT pk_oauth_clients PRIMARY KEY (id),
    CONSTRAINT uq_oauth_clients_client_id UNIQUE (client_id),
    CONSTRAINT ck_oauth_clients_ck_oauth_clients_role_allowed CHECK (role IN ('service'))
);
CREATE INDEX ix_oauth_clients_client_id_deleted_at ON oauth_clients (client_id, deleted_at);

CREATE TABLE signing_keys (
    id uuid NOT NULL,
    kid varchar(128) NOT NULL,
    public_key text NOT NULL,
    private_key text NOT NULL,
    status signing_key_status NOT NULL,
    activated_at timestamptz NOT NULL,
    retired_at timestamptz,
    retire_after timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    tenant_id uuid,
    CONSTRAINT pk_signing_keys PRIMARY KEY (id),
    CONSTRAINT uq_signing_keys_kid UNIQUE (kid)
);
CREATE INDEX ix_signing_keys_status_deleted_at ON signing_keys (status, deleted_at);
CREATE UNIQUE INDEX uq_signing_keys_single_active ON signing_keys (status)
    WHERE status = 'active' AND deleted_at IS NULL;

CREATE TABLE audit_events (
    id uuid NOT NULL,
    event_type varchar(128) NOT NULL,
    actor_id uuid,
    actor_type audit_actor_type NOT NULL,
    target_id uuid,
    target_type varchar(128),
    ip_address inet,
    user_agent text,
    correlation_id uuid,
    success boolean NOT NULL,
    failure_reason text,
    metadata jsonb,
    created_at timestamptz NOT NULL,
    CONSTRAINT pk_audit_events PRIMARY KEY (id)
);
CREATE INDEX ix_audit_events_created_at ON audit_events (created_at);
CREATE INDEX ix_audit_events_event_type_created_at ON audit_events (event_type, created_at);
CREATE INDEX ix_audit_events_actor_id_created_at ON audit_events (actor_id, created_at);
CREATE INDEX ix_audit_events_target_id_created_at ON audit_events (target_id, created_at);

CREATE TABLE webhook_endpoints (
    id uuid NOT NULL,
    name varchar(255) NOT NULL,
    url varchar(2048) NOT NULL,
    secret text NOT NULL,
    events varchar[] NOT NULL DEFAULT '{}'::varchar[],
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    tenant_id uuid,
    CONSTRAINT pk_webhook_endpoints PRIMARY KEY (id)
);
CREATE INDEX ix_webhook_endpoints_is_active_deleted_at ON webhook_endpoints (is_active, deleted_at);

CREATE TABLE webhook_deliveries (
    id uuid NOT NULL,
    endpoint_id uuid NOT NULL,
    event_type varchar(255) NOT NULL,
    payload jsonb NOT NULL,
    status varchar(16) NOT NULL DEFAULT 'pending',
    attempt_count integer NOT NULL DEFAULT 0,
    last_attempted_at timestamptz,
    next_retry_at timestamptz,
    response_status integer,
    response_body text,
    created_at timestamptz NOT NULL,
    CONSTRAINT pk_webhook_deliveries PRIMARY KEY (id),
    CONSTRAINT fk_webhook_deliveries_endpoint_id_webhook_endpoints FOREIGN KEY (endpoint_id)
        REFERENCES webhook_endpoints (id) ON DELETE RESTRICT,
    CONSTRAINT ck_webhook_deliveries_status_allowed
        CHECK (status IN ('pending', 'delivered', 'failed', 'abandoned'))
);
CREATE INDEX ix_webhook_deliveries_endpoint_created
    ON webhook_deliveries (endpoint_id, created_at, id);
CREATE INDEX ix_webhook_deliveries_due ON webhook_deliveries (status, next_retry_at);

CREATE TABLE kv_entries (
    key text NOT NULL,
    value text NOT NULL,
    expires_at timestamptz,
    CONSTRAINT pk_kv_entries PRIMARY KEY (key)
);
CREATE INDEX ix_kv_entries_expires_at ON kv_entries (expires_at);

CREATE TABLE email_outbox (
    id uuid NOT NULL,
    kind varchar(32) NOT NULL,
    to_address varchar(320) NOT NULL,
    subject varchar(255) NOT NULL,
    body_text text,
    body_html text,
    status varchar(16) NOT NULL DEFAULT 'pending',
    attempt_count integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    expires_at timestamptz,
    last_error text,
    created_at timestamptz NOT NULL,
    sent_at timestamptz,
    CONSTRAINT pk_email_outbox PRIMARY KEY (id),
    CONSTRAINT ck_email_outbox_status_allowed
        CHECK (status IN ('pending', 'sent', 'failed', 'abandoned'))
);
CREATE INDEX ix_email_outbox_due ON email_outbox (status, next_attempt_at);
