-- Login throttling that cannot lock the real user out (see docs/operations.md).
-- Failure counters now also use scope 'user_ip' (subject '<address> <username>'), and the
-- addresses each username logged in from are remembered for a while.
CREATE TABLE sidecar_login_successes (
    -- the username as throttling keys it (lowercased)
    subject TEXT NOT NULL,
    -- the client address (an IPv6 one as its /64)
    address TEXT NOT NULL,
    last_success_at BIGINT NOT NULL,
    PRIMARY KEY (subject, address)
);
CREATE INDEX sidecar_login_successes_last_success_at ON sidecar_login_successes (last_success_at);
CREATE INDEX sidecar_login_failures_window_started_at ON sidecar_login_failures (window_started_at);
