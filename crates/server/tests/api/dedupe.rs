//! Dedupe by event id is exact over all time: ids sent again weeks later, after their keys
//! left memory for runs on disk, after a restart, after a kill -9, and in a file written
//! before the id set existed (migrated on start).

use crate::helpers::*;
use serde_json::{Value, json};

const BATCH: &str = "/api/v1/analytics/events/batch";

/// Events `ids` of name `name`, `days_ago` days old.
fn batch(name: &str, ids: impl Iterator<Item = usize>, days_ago: i64) -> Value {
    let ts = (chrono::Utc::now() - chrono::Duration::days(days_ago)).to_rfc3339();
    json!({"events": ids.map(|i| json!({"event_name": name, "event_id": format!("{name}-{i}"), "timestamp": ts})).collect::<Vec<_>>()})
}

struct Remote {
    base: String,
    client: reqwest::Client,
}

impl Remote {
    fn of(child: &Child) -> Remote {
        Remote { base: format!("http://{}", child.addr), client: reqwest::Client::new() }
    }

    /// Sends `ids` in batches of 500 and answers how many events of `name` are stored.
    async fn send(&self, name: &str, ids: std::ops::Range<usize>, days_ago: i64) -> u64 {
        let all: Vec<usize> = ids.collect();
        for chunk in all.chunks(500) {
            let r = self.client.post(format!("{}{BATCH}", self.base)).bearer_auth(admin());
            let r = r.json(&batch(name, chunk.iter().copied(), days_ago)).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
        self.stored(name).await
    }

    async fn stored(&self, name: &str) -> u64 {
        let url = format!("{}/api/v1/analytics/events?event_name={name}&page=1&limit=1", self.base);
        let r = self.client.get(url).bearer_auth(admin()).send().await.unwrap();
        r.json::<Value>().await.unwrap()["pagination"]["total"].as_u64().unwrap()
    }
}

fn runs_on_disk(data: &std::path::Path) -> usize {
    let manifest = std::fs::read_to_string(data.join("sightline.ids/manifest")).unwrap_or_default();
    manifest.lines().filter(|l| l.starts_with("run ")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_ids_sent_again_are_stored_once_across_runs_restarts_and_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    // Few ids in memory, so that most go to runs on disk and runs merge.
    let env = [("SIGHTLINE_DEDUPE_IDS_IN_MEMORY", "1000"), ("SIGHTLINE_LIMIT_BATCH", "off")];
    let child = Child::start(&["--data-dir", &data], &env).await;
    let remote = Remote::of(&child);
    assert_eq!(remote.send("old", 0..6_000, 45).await, 6_000);
    assert!(runs_on_disk(dir.path()) >= 1, "ids went to runs on disk");
    // The same ids again, 45 days old, and again with today's time: nothing new.
    assert_eq!(remote.send("old", 0..6_000, 45).await, 6_000);
    assert_eq!(remote.send("old", 3_000..6_500, 0).await, 6_500);

    // After a kill -9, the ids committed since the last run was written come back from
    // the events themselves.
    assert_eq!(remote.send("late", 0..700, 40).await, 700);
    child.kill();
    let child = Child::start(&["--data-dir", &data], &env).await;
    let remote = Remote::of(&child);
    assert_eq!(remote.send("late", 0..700, 40).await, 700);
    assert_eq!(remote.send("old", 0..7_000, 31).await, 7_000);

    // A deleted tenant's ids are forgotten with it: made again, it stores them again.
    let client = reqwest::Client::new();
    let tenants = format!("{}/api/v1/tenants", remote.base);
    let r = client.post(&tenants).bearer_auth(superuser()).json(&json!({"id": "acme", "name": "Acme"})).send().await;
    assert_eq!(r.unwrap().status(), 201);
    let acme = token("admin", Some("acme"));
    let send_acme = || async {
        let r = client.post(format!("{}{BATCH}", remote.base)).bearer_auth(&acme).json(&batch("old", 0..300, 45));
        assert_eq!(r.send().await.unwrap().status(), 200);
        let url = format!("{}/api/v1/analytics/events?event_name=old&page=1&limit=1", remote.base);
        let r = client.get(url).bearer_auth(&acme).send().await.unwrap();
        r.json::<Value>().await.unwrap()["pagination"]["total"].as_u64().unwrap()
    };
    assert_eq!(send_acme().await, 300, "the same ids in another tenant are new");
    let r = client.delete(format!("{tenants}/acme")).bearer_auth(superuser()).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = client.post(&tenants).bearer_auth(superuser()).json(&json!({"id": "acme", "name": "Acme"})).send().await;
    assert_eq!(r.unwrap().status(), 201);
    assert_eq!(send_acme().await, 300);
    assert_eq!(remote.stored("old").await, 7_000, "the default tenant kept its own");
}

/// A data file as the version before the id set wrote it: the events table with its
/// `id_key` primary key, schema version 3, a property kept in a column. Built with the
/// SQL of that version, since DuckDB files are not committed to the repository.
fn write_previous_version_file(path: &std::path::Path, events: usize) {
    let conn = duckdb::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE sightline_schema (version BIGINT NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp);
         INSERT INTO sightline_schema (version) VALUES (1), (2), (3);
         CREATE TABLE events (
            tenant_id VARCHAR NOT NULL, event_id VARCHAR NOT NULL, id_key UHUGEINT NOT NULL PRIMARY KEY,
            event_name VARCHAR NOT NULL, user_id VARCHAR, session_id VARCHAR, ts TIMESTAMP NOT NULL,
            received_at TIMESTAMP NOT NULL, properties JSON NOT NULL, context JSON);
         CREATE TABLE metric_records (
            tenant_id VARCHAR NOT NULL, id VARCHAR NOT NULL, service_name VARCHAR NOT NULL, metric_type VARCHAR NOT NULL,
            metric_name VARCHAR NOT NULL, value DOUBLE NOT NULL, ts TIMESTAMP NOT NULL, dimensions JSON NOT NULL,
            meta JSON NOT NULL, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP);
         CREATE TABLE property_columns (slot INTEGER NOT NULL PRIMARY KEY, key VARCHAR NOT NULL UNIQUE);
         INSERT INTO property_columns VALUES (1, 'plan'), (2, 'amount');
         ALTER TABLE events ADD COLUMN pc_1 VARCHAR;
         ALTER TABLE events ADD COLUMN pc_2 VARCHAR;",
    )
    .unwrap();
    let mut app = conn.appender("events").unwrap();
    let ts = chrono::Utc::now() - chrono::Duration::days(60);
    for i in 0..events {
        let id = format!("prev-{i}");
        let plan = ["free", "pro"][i % 2];
        let key = xxhash_rust::xxh3::xxh3_128(format!("default:{id}").as_bytes());
        let at =
            duckdb::types::Value::Timestamp(duckdb::types::TimeUnit::Microsecond, ts.timestamp_micros() + i as i64);
        app.append_row(duckdb::params![
            "default",
            id,
            key,
            "prev",
            format!("u{}", i % 50),
            Option::<String>::None,
            at.clone(),
            at,
            json!({"plan": plan, "n": i, "amount": i}).to_string(),
            Option::<String>::None,
            plan,
            i.to_string(),
        ])
        .unwrap();
    }
    app.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_the_previous_version_migrates_on_start_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    write_previous_version_file(&dir.path().join("sightline.duckdb"), 3_000);
    let data = dir.path().to_str().unwrap().to_owned();
    let child = Child::start(&["--data-dir", &data], &[("SIGHTLINE_LIMIT_BATCH", "off")]).await;
    let said = |message: &str| child.startup_log.iter().find(|l| l["message"] == message).cloned();
    let migrated = said("events table migrated").expect("the migration is in the log");
    assert_eq!(migrated["events"], 3_000);
    let rebuilt = said("event id set brought up to date").expect("the id set rebuild is in the log");
    assert_eq!(rebuilt["read"], 3_000);

    let remote = Remote::of(&child);
    assert_eq!(remote.stored("prev").await, 3_000);
    let r = remote.client.get(format!("{}/api/v1/analytics/events/prev-7", remote.base)).bearer_auth(admin());
    let event: Value = r.send().await.unwrap().json().await.unwrap();
    assert_eq!(event["properties"], json!({"plan": "pro", "n": 7, "amount": 7}), "{event}");
    // The kept column came across: a breakdown by it counts as the JSON does.
    let days = |n: i64| (chrono::Utc::now() - chrono::Duration::days(n)).format("%Y-%m-%d").to_string();
    let q = json!({"kind": "breakdown", "series": ["events"], "breakdown": ["plan"],
                   "date_range": {"start": days(90), "end": days(0)}});
    let r = remote.client.post(format!("{}/api/v1/insights", remote.base)).bearer_auth(admin()).json(&q);
    let answer: Value = r.send().await.unwrap().json().await.unwrap();
    let rows = answer["rows"].as_array().unwrap_or_else(|| panic!("{answer}"));
    let count = |plan: &str| rows.iter().find(|r| r["plan"] == plan).map(|r| r["events"].clone());
    assert_eq!((count("free"), count("pro")), (Some(json!(1500)), Some(json!(1500))), "{answer}");
    // Users came across as keys (50 of them), kept amounts as numbers (0..3000).
    let q = json!({"kind": "aggregate", "series": ["users", {"event": "prev", "aggregation": "sum", "field": "properties.amount"}],
                   "date_range": {"start": days(90), "end": days(0)}});
    let r = remote.client.post(format!("{}/api/v1/insights", remote.base)).bearer_auth(admin()).json(&q);
    let answer: Value = r.send().await.unwrap().json().await.unwrap();
    let text = answer.to_string();
    assert!(text.contains(":50") && text.contains(&format!(":{}", (0..3_000).sum::<u64>())), "{answer}");
    // A user of the old file seen again is the same user: its new events carry the key
    // the migration gave its old ones.
    let again = json!({"event_name": "prev2", "event_id": "again-1", "user_id": "u7"});
    let r = remote.client.post(format!("{}/api/v1/analytics/events", remote.base)).bearer_auth(admin()).json(&again);
    assert_eq!(r.send().await.unwrap().status(), 200);
    let q = json!({"kind": "aggregate", "series": ["users"], "date_range": {"start": days(90), "end": days(0)}});
    let r = remote.client.post(format!("{}/api/v1/insights", remote.base)).bearer_auth(admin()).json(&q);
    let answer: Value = r.send().await.unwrap().json().await.unwrap();
    assert!(answer.to_string().contains(":50"), "{answer}");
    // The old ids are still known; new ones are stored.
    assert_eq!(remote.send("prev", 2_500..3_200, 60).await, 3_200);
    child.kill();

    // Started again: no second migration, no rebuild from every event.
    let child = Child::start(&["--data-dir", &data], &[]).await;
    assert!(child.startup_log.iter().all(|l| l["message"] != "events table migrated"));
    assert_eq!(Remote::of(&child).stored("prev").await, 3_200);
}
