-- Tenant-owned resources of every kind in one table (segments, alert rules, custom metrics
-- today; dashboards, reports, schedules, webhooks, exports, syncs next). `body` is the
-- resource as JSON; `unique_name` is its name for kinds whose names are unique in a
-- tenant, NULL otherwise (SQLite's UNIQUE lets NULLs repeat).
CREATE TABLE resources (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    unique_name TEXT,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, kind, id),
    UNIQUE (tenant_id, kind, unique_name)
);

INSERT INTO resources (tenant_id, kind, id, name, unique_name, body, created_at, updated_at)
SELECT tenant_id, 'segment', id, name, name, json_object('conditions', json(conditions)), created_at, updated_at
FROM segments;

INSERT INTO resources (tenant_id, kind, id, name, unique_name, body, created_at, updated_at)
SELECT tenant_id, 'alert_rule', id, name, NULL,
       json_object('metric', metric, 'condition', condition, 'threshold', threshold, 'window_secs', window_secs),
       created_at, updated_at
FROM alert_rules;

-- A custom metric is addressed by its name, so its name is its id.
INSERT INTO resources (tenant_id, kind, id, name, unique_name, body, created_at, updated_at)
SELECT tenant_id, 'custom_metric', name, name, name, json(spec), created_at, updated_at
FROM custom_metrics;

DROP TABLE segments;
DROP TABLE alert_rules;
DROP TABLE custom_metrics;
