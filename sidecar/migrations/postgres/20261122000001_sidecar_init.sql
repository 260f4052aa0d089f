-- The sidecar's own tables in Django's database. Django never writes them.
CREATE TABLE sidecar_host_keys (
    -- SHA-256 of the key, hex. The key itself is never stored.
    key_hash TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL,
    -- SHA-256 of Django's password column at login: a password change invalidates the key.
    password_fingerprint TEXT NOT NULL,
    client_version TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL
);
CREATE INDEX sidecar_host_keys_user_id ON sidecar_host_keys (user_id);

CREATE TABLE sidecar_login_failures (
    -- 'user' or 'ip'
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    failures BIGINT NOT NULL,
    window_started_at BIGINT NOT NULL,
    PRIMARY KEY (scope, subject)
);
