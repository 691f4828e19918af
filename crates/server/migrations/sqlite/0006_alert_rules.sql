-- A tenant's alert rules: a metric over a trailing window compared with a threshold,
-- checked whenever /api/v1/analytics/realtime is read.
CREATE TABLE alert_rules (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    metric      TEXT NOT NULL,
    condition   TEXT NOT NULL,
    threshold   REAL NOT NULL,
    window_secs INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
