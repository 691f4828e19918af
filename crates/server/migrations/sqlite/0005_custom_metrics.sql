-- A tenant's own metric definitions (seed 004's custom metrics), by name. `spec` is the
-- definition as the client gave it, normalized: JSON text.
CREATE TABLE custom_metrics (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
