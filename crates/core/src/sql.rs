//! One builder for SQL text and its bound values, so their order cannot drift: every
//! value a caller supplies goes in as a parameter, never as text.

/// A value bound to a `?` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// An unsigned 128-bit key (DuckDB UHUGEINT).
    U128(u128),
    /// Microseconds since the Unix epoch, UTC.
    TimestampMicros(i64),
    /// SQL NULL (a custom query's `null` parameter).
    Null,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct SqlBuilder {
    sql: String,
    params: Vec<SqlValue>,
}

impl SqlBuilder {
    pub fn new(sql: &str) -> Self {
        Self { sql: sql.to_owned(), params: Vec::new() }
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

    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub fn params(&self) -> &[SqlValue] {
        &self.params
    }

    pub fn into_parts(self) -> (String, Vec<SqlValue>) {
        (self.sql, self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_params_stay_in_step() {
        let hostile = "x' OR 1=1; --".to_owned();
        let mut b = SqlBuilder::new("SELECT 1 FROM events WHERE tenant_id = ");
        b.bind(SqlValue::Text("t".into())).push_bind(" AND user_id = ", SqlValue::Text(hostile.clone()));
        assert_eq!(b.sql(), "SELECT 1 FROM events WHERE tenant_id = ? AND user_id = ?");
        assert_eq!(b.sql().matches('?').count(), b.params().len());
        assert!(!b.sql().contains(&hostile));
    }
}
