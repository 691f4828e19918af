//! One builder for SQL text and its bound values, so their order cannot drift: every
//! value a caller supplies goes in as a parameter, never as text.
//!
//! The builder is also what keeps tenants apart: the stored relations every tenant
//! shares ([`Stored`]) are reachable only through [`SqlBuilder::from_tenant`], which
//! reads one tenant's rows of them. A statement that names one any other way does not
//! leave the builder ([`SqlBuilder::into_parts`] refuses it), so an analysis cannot read
//! another tenant's events by forgetting a filter.

use crate::model::TenantId;

/// A value bound to a `?` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Microseconds since the Unix epoch, UTC.
    TimestampMicros(i64),
    /// SQL NULL (a custom query's `null` parameter).
    Null,
}

/// The SQL dialect of an analytics engine. Compilers write through a builder made for
/// the engine's dialect ([`SqlBuilder::in_dialect`]) and ask it for the fragments that
/// differ between engines; ClickHouse (cluster mode) adds its arms here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    DuckDb,
}

impl Dialect {
    /// The function that reads a JSON value's text at a path: `f(column, path)`.
    pub fn json_text_fn(self) -> &'static str {
        match self {
            Dialect::DuckDb => "json_extract_string",
        }
    }

    /// What follows a CTE's name to have it inlined where it is read rather than computed
    /// once and stored: DuckDB stores a CTE read more than once, and then scans the stored
    /// rows with the readers' filters OR-ed together; inlined, each reader's filter is
    /// pushed into its own scan of the table (a funnel ran 3x faster).
    pub fn inline_cte(self) -> &'static str {
        match self {
            Dialect::DuckDb => " AS NOT MATERIALIZED (",
        }
    }

    /// The function that turns a timestamp into epoch microseconds.
    pub fn epoch_us_fn(self) -> &'static str {
        match self {
            Dialect::DuckDb => "epoch_us",
        }
    }
}

/// A stored relation that holds every tenant's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Events,
    MetricRecords,
}

impl Stored {
    const ALL: [Stored; 2] = [Stored::Events, Stored::MetricRecords];

    pub fn table(self) -> &'static str {
        match self {
            Stored::Events => "events",
            Stored::MetricRecords => "metric_records",
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct SqlBuilder {
    sql: String,
    params: Vec<SqlValue>,
    dialect: Dialect,
    /// Where [`SqlBuilder::from_tenant`] named a stored relation: the only places one may
    /// be named.
    scoped_at: Vec<usize>,
}

impl SqlBuilder {
    /// A DuckDB statement (the embedded engine's own store code).
    pub fn new(sql: &str) -> Self {
        Self::in_dialect(Dialect::DuckDb, sql)
    }

    /// A statement for an engine of `dialect`: what the compilers write.
    pub fn in_dialect(dialect: Dialect, sql: &str) -> Self {
        Self { sql: sql.to_owned(), params: Vec::new(), dialect, scoped_at: Vec::new() }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Appends the text of `column`'s JSON value at `key` (a top-level key, bound as a
    /// JSON path): `json_extract_string(properties, ?)` in DuckDB.
    pub fn json_text(&mut self, column: &'static str, key: &str) -> &mut Self {
        let f = self.dialect.json_text_fn();
        self.sql.push_str(f);
        self.sql.push('(');
        self.sql.push_str(column);
        let path = crate::query::field::PropertyPath::parse(key).expect("a key of the program").json_path();
        self.push_bind(", ", SqlValue::Text(path)).push(")")
    }

    /// Appends `expr` (an expression of the program) as epoch microseconds.
    pub fn epoch_us(&mut self, expr: &str) -> &mut Self {
        let f = self.dialect.epoch_us_fn();
        self.sql.push_str(f);
        self.sql.push('(');
        self.sql.push_str(expr);
        self.sql.push(')');
        self
    }

    /// Appends ` FROM <one tenant's rows of rel> AS <alias>`: the filter comes with the
    /// relation, inside its own parentheses, so nothing appended after it (an `OR`, a
    /// join) can widen it.
    pub fn from_tenant(&mut self, rel: Stored, tenant: &TenantId, alias: &'static str) -> &mut Self {
        self.sql.push_str(" FROM (SELECT * FROM ");
        self.scoped_at.push(self.sql.len());
        self.sql.push_str(rel.table());
        self.sql.push_str(" WHERE tenant_id = ");
        self.bind(SqlValue::Text(tenant.as_str().to_owned()));
        self.sql.push_str(") AS ");
        self.sql.push_str(alias);
        self
    }

    /// Appends trusted SQL text: a literal of the program, never client input.
    pub fn push(&mut self, sql: &'static str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends text the program composed from its own literals, enum names and indexes
    /// (`l0`, `d1`, `coalesce(e.b, m.b)`); never text that came from a client.
    pub fn push_trusted(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder and the value it stands for.
    pub fn bind(&mut self, value: SqlValue) -> &mut Self {
        self.sql.push('?');
        self.params.push(value);
        self
    }

    /// Appends `text` followed by a bound value: `push_bind(" AND user_id = ", v)`.
    pub fn push_bind(&mut self, sql: &'static str, value: SqlValue) -> &mut Self {
        self.push(sql).bind(value)
    }

    /// The statement's text; refused, as in [`SqlBuilder::into_parts`], when it names a
    /// stored relation without its tenant.
    pub fn sql(&self) -> &str {
        if let Some(at) = unscoped_reference(&self.sql, &self.scoped_at) {
            panic!("a stored relation is read without its tenant filter at byte {at}: {}", self.sql);
        }
        &self.sql
    }

    pub fn params(&self) -> &[SqlValue] {
        &self.params
    }

    /// The statement and its values. Panics when the text names a stored relation
    /// anywhere but where [`SqlBuilder::from_tenant`] put it: that is a bug in the
    /// program (every literal is the program's), and the tests of each analysis find it.
    pub fn into_parts(self) -> (String, Vec<SqlValue>) {
        if let Some(at) = unscoped_reference(&self.sql, &self.scoped_at) {
            panic!("a stored relation is read without its tenant filter at byte {at}: {}", self.sql);
        }
        (self.sql, self.params)
    }
}

/// The first place `sql` reads a stored relation (`FROM events`, `JOIN main.events`)
/// other than at one of the `allowed` offsets.
fn unscoped_reference(sql: &str, allowed: &[usize]) -> Option<usize> {
    let lower = sql.to_ascii_lowercase();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for rel in Stored::ALL {
        let name = rel.table();
        for (at, _) in lower.match_indices(name) {
            let after = lower[at + name.len()..].chars().next();
            if after.is_some_and(word) || lower[..at].chars().next_back().is_some_and(word) {
                continue;
            }
            // Skip a schema (`main.`) and blanks back to the word before.
            let before = lower[..at].strip_suffix("main.").unwrap_or(&lower[..at]).trim_end();
            let previous = before.rsplit(|c: char| !word(c)).next().unwrap_or("");
            if matches!(previous, "from" | "join") && !allowed.contains(&at) {
                return Some(at);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("t").unwrap()
    }

    #[test]
    fn placeholders_and_params_stay_in_step() {
        let hostile = "x' OR 1=1; --".to_owned();
        let mut b = SqlBuilder::new("SELECT 1");
        b.from_tenant(Stored::Events, &tenant(), "e");
        b.push_bind(" WHERE user_id = ", SqlValue::Text(hostile.clone())).push(" OR true");
        assert_eq!(b.sql(), "SELECT 1 FROM (SELECT * FROM events WHERE tenant_id = ?) AS e WHERE user_id = ? OR true");
        assert_eq!(b.sql().matches('?').count(), b.params().len());
        assert!(!b.sql().contains(&hostile));
        let (_, params) = b.into_parts();
        assert_eq!(params[0], SqlValue::Text("t".into()));
    }

    #[test]
    fn a_stored_relation_named_without_its_tenant_does_not_leave_the_builder() {
        for sql in [
            "SELECT 1 FROM events WHERE tenant_id = ?",
            "SELECT 1 FROM x JOIN metric_records m ON true",
            "SELECT 1 FROM main.events",
            "SELECT 1 FROM\n  Events",
        ] {
            let outcome = std::panic::catch_unwind(|| SqlBuilder::new(sql).into_parts());
            assert!(outcome.is_err(), "{sql} was let through");
        }
        // Split across pushes, as `push(" FROM ").push(table)` would write it.
        let outcome = std::panic::catch_unwind(|| {
            let mut b = SqlBuilder::new("SELECT 1");
            b.push(" FROM ").push_trusted(Stored::Events.table());
            b.into_parts()
        });
        assert!(outcome.is_err());
        // The names as values, columns or parts of other names are not reads.
        for sql in [
            "SELECT 'events' AS events, my_events FROM t",
            "SELECT 1 FROM events_staging",
            "SELECT count(*) AS events FROM x",
        ] {
            SqlBuilder::new(sql).into_parts();
        }
    }
}
