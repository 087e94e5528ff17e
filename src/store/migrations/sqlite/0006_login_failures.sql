-- Failed log-ins, counted per account and per client address over a sliding window, so that
-- every process that serves log-ins sees the same count. `key` is the SHA-256 of what is
-- counted (it names an address), `at` when.
CREATE TABLE login_failures (
    key BLOB NOT NULL,
    at  TEXT NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (key, at);
CREATE INDEX login_failures_at ON login_failures (at);
