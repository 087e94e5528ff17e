-- Webhook events, written in the transaction of the change they tell of: one row per event and
-- webhook. Delivered at least once, in `seq` order per subject (the account the event is about);
-- a delivered row is kept for 7 days, a `failed` one (attempts used up) until it is replayed,
-- and the subject's later events wait behind it. `body` is the exact JSON every attempt sends.
CREATE TABLE webhook_outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook         TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    school_id       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    type            TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    -- pending, delivered or failed
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT NOT NULL,
    last_attempt_at TEXT,
    last_error      TEXT,
    delivered_at    TEXT
);
CREATE UNIQUE INDEX webhook_outbox_event ON webhook_outbox (webhook, event_id);
-- The deliverer's question: a webhook's due pending events …
CREATE INDEX webhook_outbox_due ON webhook_outbox (webhook, next_attempt_at) WHERE state = 'pending';
-- … whose subject has no earlier event still undelivered.
CREATE INDEX webhook_outbox_open ON webhook_outbox (webhook, subject, seq) WHERE state <> 'delivered';
CREATE INDEX webhook_outbox_delivered ON webhook_outbox (delivered_at) WHERE state = 'delivered';

-- Who delivers a webhook's events now, until when: one deliverer per webhook across processes
-- and instances. An expired lease may be taken over.
CREATE TABLE webhook_leases (
    webhook    TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
