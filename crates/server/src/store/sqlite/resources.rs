//! Tenant-owned resources of every kind, in one table (`0008_resources.sql`).

use super::{SqliteMeta, backend, parse_ts, ts};
use crate::store::{ResourceStore, StoreResult, StoredResource};
use anyhow::Context;
use async_trait::async_trait;
use sightline_core::model::TenantId;
use sqlx::Row;

const COLUMNS: &str = "SELECT id, name, body, created_at, updated_at FROM resources";

fn from_row(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<StoredResource> {
    let body: String = row.try_get("body")?;
    Ok(StoredResource {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        body: serde_json::from_str(&body).context("a stored resource is not JSON")?,
        created_at: parse_ts(row.try_get("created_at")?)?,
        updated_at: parse_ts(row.try_get("updated_at")?)?,
    })
}

#[async_trait]
impl ResourceStore for SqliteMeta {
    async fn insert_resource(
        &self,
        tenant: &TenantId,
        kind: &str,
        r: &StoredResource,
        unique_name: bool,
        max: usize,
    ) -> StoreResult<bool> {
        // Counted and inserted in one transaction on the single writer, so two creates
        // at once cannot both pass the count.
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM resources WHERE tenant_id = ? AND kind = ?")
            .bind(tenant.as_str())
            .bind(kind)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        if count as usize >= max {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO resources (tenant_id, kind, id, name, unique_name, body, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant.as_str())
        .bind(kind)
        .bind(&r.id)
        .bind(&r.name)
        .bind(unique_name.then_some(r.name.as_str()))
        .bind(r.body.to_string())
        .bind(ts(r.created_at))
        .bind(ts(r.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn list_resources(&self, tenant: &TenantId, kind: &str) -> StoreResult<Vec<StoredResource>> {
        let rows = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = ? AND kind = ? ORDER BY created_at, id"))
            .bind(tenant.as_str())
            .bind(kind)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(from_row).collect::<anyhow::Result<_>>()?)
    }

    async fn get_resource(&self, tenant: &TenantId, kind: &str, id: &str) -> StoreResult<Option<StoredResource>> {
        let row = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = ? AND kind = ? AND id = ?"))
            .bind(tenant.as_str())
            .bind(kind)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    async fn replace_resource(
        &self,
        tenant: &TenantId,
        kind: &str,
        r: &StoredResource,
        unique_name: bool,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE resources SET name = ?, unique_name = ?, body = ?, updated_at = ? \
             WHERE tenant_id = ? AND kind = ? AND id = ?",
        )
        .bind(&r.name)
        .bind(unique_name.then_some(r.name.as_str()))
        .bind(r.body.to_string())
        .bind(ts(r.updated_at))
        .bind(tenant.as_str())
        .bind(kind)
        .bind(&r.id)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_resource(&self, tenant: &TenantId, kind: &str, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM resources WHERE tenant_id = ? AND kind = ? AND id = ?")
            .bind(tenant.as_str())
            .bind(kind)
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::MIGRATOR;
    use crate::store::{ResourceStore, StoredResource};
    use sightline_core::model::TenantId;
    use sqlx::migrate::Migrator;
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};

    /// A file written by the version before resources (migrations 1 to 7), with a segment,
    /// two alert rules of one name and a custom metric, opens with all of them kept.
    #[tokio::test]
    async fn the_old_tables_move_into_resources_on_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.sqlite");
        let before = Migrator {
            migrations: std::borrow::Cow::Owned(MIGRATOR.iter().filter(|m| m.version < 8).cloned().collect()),
            ..Migrator::DEFAULT
        };
        let mut conn = SqliteConnectOptions::new().filename(&path).create_if_missing(true).connect().await.unwrap();
        before.run(&mut conn).await.unwrap();
        let t = "2026-01-02T03:04:05.000000Z";
        for sql in [
            "INSERT INTO tenants (id, name, created_at) VALUES ('acme', 'Acme', '2026-01-01T00:00:00.000000Z')",
            "INSERT INTO segments VALUES ('acme', 'seg-1', 'Buyers', '[{\"field\":\"purchases\",\"operator\":\"gt\",\"value\":0}]', 'T', 'T')",
            "INSERT INTO alert_rules VALUES ('acme', 'rule-1', 'Spike', 'events', 'gt', 100.5, 300, 'T', 'T')",
            "INSERT INTO alert_rules VALUES ('acme', 'rule-2', 'Spike', 'revenue', 'lt', 1, 3600, 'T', 'T')",
            "INSERT INTO custom_metrics VALUES ('acme', 'aov', '{\"metric_name\":\"aov\",\"calculation\":\"revenue / purchases\"}', 'T', 'T')",
        ] {
            sqlx::query(&sql.replace("'T'", &format!("'{t}'"))).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();

        let meta = super::super::SqliteMeta::open(Some(&path)).await.unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let segs = meta.list_resources(&acme, "segment").await.unwrap();
        assert_eq!(segs.len(), 1);
        assert_eq!((segs[0].id.as_str(), segs[0].name.as_str()), ("seg-1", "Buyers"));
        assert_eq!(segs[0].body["conditions"][0]["field"], "purchases", "{}", segs[0].body);
        assert_eq!(segs[0].created_at.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        let rules = meta.list_resources(&acme, "alert_rule").await.unwrap();
        assert_eq!(rules.len(), 2, "alert rules may share a name");
        let r = rules.iter().find(|r| r.id == "rule-1").unwrap();
        assert_eq!(
            r.body,
            serde_json::json!({"metric": "events", "condition": "gt", "threshold": 100.5, "window_secs": 300})
        );
        let metrics = meta.list_resources(&acme, "custom_metric").await.unwrap();
        assert_eq!((metrics[0].id.as_str(), metrics[0].name.as_str()), ("aov", "aov"));
        assert_eq!(metrics[0].body["calculation"], "revenue / purchases");
        // Names stay unique where they were: a second segment named Buyers conflicts.
        let now = chrono::Utc::now();
        let dup = StoredResource {
            id: "seg-2".into(),
            name: "Buyers".into(),
            body: serde_json::json!({}),
            created_at: now,
            updated_at: now,
        };
        assert!(matches!(
            meta.insert_resource(&acme, "segment", &dup, true, 10).await,
            Err(crate::store::StoreError::Conflict(_))
        ));
        // The limit counts what is there: one segment kept, so a limit of 1 refuses another.
        let other = StoredResource { id: "seg-3".into(), name: "Other".into(), ..dup };
        assert!(!meta.insert_resource(&acme, "segment", &other, true, 1).await.unwrap());
        assert!(meta.insert_resource(&acme, "segment", &other, true, 2).await.unwrap());
    }
}
