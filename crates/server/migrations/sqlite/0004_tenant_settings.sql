-- Per-tenant settings (JSON values), such as the browser origins allowed by CORS.
CREATE TABLE tenant_settings (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
