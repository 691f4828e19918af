//! Custom SQL (seed 004's `POST /api/v1/analytics/query` with a `query`): [`sandbox`] checks
//! one client-written query and rewrites it so that it can read only the caller's tenant.
//!
//! The query is parsed with sqlparser's DuckDB dialect and walked by an allow-list: every
//! construct the walker does not know is refused, so a new sqlparser variant can never slip
//! through unchecked. What the caller runs is sqlparser's rendering of the checked tree (no
//! comments, no original text), with the tenant's view definitions prepended as CTEs.
//!
//! # Views
//!
//! A query reads only these views, named without a schema (any case, quoted or not). Each
//! holds the caller's tenant's rows only; none has a `tenant_id` column. Times are UTC
//! `TIMESTAMP`s; `properties`, `context`, `dimensions` and `meta` are `JSON` (read them with
//! `->`, `->>` or the `json_*` functions).
//!
//! | view | columns |
//! |---|---|
//! | `events` | `event_id`, `event_name`, `user_id`, `session_id`, `timestamp`, `properties`, `context` |
//! | `sessions` | `session_id`, `user_id`, `started_at`, `ended_at`, `duration_seconds` (DOUBLE), `events` (count) |
//! | `users` | `user_id`, `first_seen`, `last_seen`, `events` (count), `sessions` (count) |
//! | `conversations` | `conversation_id`, `user_id`, `bot_id`, `channel`, `started_at`, `ended_at`, `duration_seconds` (DOUBLE), `duration` (the same), `date` (DATE of `started_at`), `messages` (count) |
//! | `messages` | `event_id`, `conversation_id`, `user_id`, `role`, `token_count` (BIGINT), `response_time_ms` (DOUBLE), `model`, `cost` (DOUBLE), `timestamp` |
//! | `metric_records` | `id`, `service_name`, `metric_type`, `metric_name`, `value` (DOUBLE), `timestamp`, `date` (DATE of `timestamp`), `dimensions`, `meta` |
//!
//! - `sessions`: one row per session. An event's `session_id` names its session; events
//!   without one but with a `user_id` are grouped per user, a new session starting after
//!   30 minutes without such an event; those sessions are named `<user_id>#<n>` (n = 1, 2,
//!   ... in time order). `user_id` is the first user id seen in the session. Events with
//!   neither id belong to no session.
//! - `users`: one row per `user_id` seen on any event; `sessions` counts the sessions (as
//!   in `sessions`) its events belong to.
//! - `conversations`: one row per `properties.conversation_id` (any event name carrying
//!   one); `user_id`, `bot_id` (`properties.bot_id`) and `channel` (`properties.channel`)
//!   are the first non-null values seen; `messages` counts its `message` events.
//! - `messages`: one row per `message` event; `conversation_id`, `role`, `token_count`,
//!   `response_time_ms`, `model` and `cost` are read from `properties` (a value that is not
//!   a number reads as NULL in the numeric columns).
//!
//! # What a query may be
//!
//! One `SELECT` (also DuckDB's `FROM ... SELECT` and `FROM x`), with CTEs (not recursive),
//! joins (inner, outer, cross, natural, semi, anti, positional, lateral subqueries), subqueries,
//! `UNION`/`INTERSECT`/`EXCEPT`, `VALUES`, window functions and `QUALIFY`, `GROUP BY`
//! (also `ALL`, `GROUPING SETS`, `ROLLUP`, `CUBE`), `HAVING`, `ORDER BY`, `LIMIT`/`OFFSET`,
//! `FETCH`, casts (`CAST`, `TRY_CAST`, `::`), `CASE`, `LIKE`/`ILIKE`/`SIMILAR TO`, lambdas,
//! list and struct literals, and the functions of [`FUNCTIONS`]. A table reference names
//! a CTE of the query that is in scope at that point (a CTE sees the CTEs defined before it
//! in its `WITH` and those of enclosing queries, not itself) or else a view above.
//!
//! A refusal is a [`Refusal`] whose `rule` is one of the slugs of [`rule`] and whose
//! `detail` says what was found.
//!
//! # Parameters
//!
//! Values are passed as `?` placeholders only (`$1`, `$name`, `:name` are refused). The
//! rewritten SQL numbers them `$1 .. $n` in the order the `?` appeared in the query text,
//! so the caller binds `parameters[i]` to parameter `i + 1` (DuckDB's positional binding
//! does exactly that). Do not add `?` placeholders around the rewritten SQL: DuckDB refuses
//! to mix `?` with `$n`.
//!
//! # What the caller still does
//!
//! Run [`Sandboxed::sql`] (wrapped for a row cap) on a connection with external access
//! disabled and under a time limit. The sandbox makes the query read only the tenant's rows;
//! it does not bound its cost.

use std::collections::HashMap;
use std::fmt;

use sqlparser::ast::{
    AccessExpr, Cte, Distinct, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause, FunctionArguments,
    GroupByExpr, Ident, InTarget, JoinConstraint, JoinOperator, LimitClause, NamedWindowExpr, ObjectName,
    ObjectNamePart, OrderByExpr, OrderByKind, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
    Statement, Subscript, TableAlias, TableFactor, TableWithJoins, Value, ValueWithSpan, WildcardAdditionalOptions,
    WindowFrameBound, WindowSpec, WindowType,
};
use sqlparser::dialect::DuckDbDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::model::TenantId;

/// The longest query accepted, in characters.
pub const MAX_SQL_CHARS: usize = 20_000;

/// The deepest nesting of `(`, `[` and `{` accepted, checked on the tokens before parsing.
/// sqlparser's recursive descent needs about 40 KiB of stack per nested subquery in a debug
/// build; with the parser's recursion limit the deepest accepted query needs under 1.25 MiB
/// there (the tests run it on 2 MiB, a spawned thread's default).
pub const MAX_NESTING: usize = 32;

/// sqlparser's own recursion limit (its default; counts expressions, queries, table factors
/// and data types), which also bounds nesting without brackets (`NOT NOT ... x`, nested
/// `CASE`) and allows 23 nested subqueries.
const PARSER_RECURSION_LIMIT: usize = 50;

/// The deepest syntax tree the walker descends into. Long operator chains (`a + b + ...`,
/// `x AND y AND ...`) parse without recursion into trees this deep, so this is checked too.
pub const MAX_TREE_DEPTH: usize = 256;

/// The view names a query may use, in the order their definitions are prepended.
pub const VIEWS: &[&str] = &["events", "sessions", "users", "conversations", "messages", "metric_records"];

/// Prefix of every name the rewrite introduces; a query may not use such a name.
pub const RESERVED_PREFIX: &str = "__sl_";

/// The stable slugs of [`Refusal::rule`].
pub mod rule {
    /// The SQL is longer than [`super::MAX_SQL_CHARS`] characters.
    pub const TOO_LONG: &str = "too_long";
    /// Nesting deeper than [`super::MAX_NESTING`] brackets or the parser's recursion limit.
    pub const TOO_DEEP: &str = "too_deep";
    /// sqlparser could not read the SQL.
    pub const PARSE_ERROR: &str = "parse_error";
    /// No statement, or more than one.
    pub const ONE_STATEMENT: &str = "one_statement";
    /// A statement other than a query (SET, PRAGMA, ATTACH, COPY, INSERT, CREATE, ...), or
    /// `SELECT ... INTO`.
    pub const SELECT_ONLY: &str = "select_only";
    /// A table name that is neither a view nor a CTE in scope.
    pub const UNKNOWN_TABLE: &str = "unknown_table";
    /// A table function, or a file path, in `FROM`.
    pub const TABLE_FUNCTION: &str = "table_function";
    /// A function (or function-like keyword) not on [`super::FUNCTIONS`].
    pub const FUNCTION_NOT_ALLOWED: &str = "function_not_allowed";
    /// A schema- or catalog-qualified table or function name.
    pub const QUALIFIED_NAME: &str = "qualified_name";
    /// `?` count differs from the parameters given, or another placeholder style.
    pub const PARAMETERS: &str = "parameters";
    /// A name starting with [`super::RESERVED_PREFIX`].
    pub const RESERVED_NAME: &str = "reserved_name";
    /// Syntax outside the supported subset (recursive CTEs, `TABLE x`, `PIVOT`, sampling,
    /// row locks, string literals other than `'...'`, identifiers quoted other than `"..."`).
    pub const SYNTAX_NOT_ALLOWED: &str = "syntax_not_allowed";

    /// Every slug, for documentation and tests.
    pub const ALL: &[&str] = &[
        TOO_LONG,
        TOO_DEEP,
        PARSE_ERROR,
        ONE_STATEMENT,
        SELECT_ONLY,
        UNKNOWN_TABLE,
        TABLE_FUNCTION,
        FUNCTION_NOT_ALLOWED,
        QUALIFIED_NAME,
        PARAMETERS,
        RESERVED_NAME,
        SYNTAX_NOT_ALLOWED,
    ];
}

/// The functions a query may call (lower case, sorted). Scalar, aggregate and window
/// functions that compute on their arguments only: nothing that reads files, settings, the
/// environment or the catalog, and nothing that makes a large value out of a small argument
/// (`repeat`, `lpad`, `range`, ...).
pub const FUNCTIONS: &[&str] = &[
    "abs",
    "age",
    "any_value",
    "approx_count_distinct",
    "approx_quantile",
    "arg_max",
    "arg_min",
    "argmax",
    "argmin",
    "array_agg",
    "array_concat",
    "array_contains",
    "array_distinct",
    "array_extract",
    "array_has",
    "array_length",
    "array_position",
    "array_slice",
    "array_to_string",
    "avg",
    "bool_and",
    "bool_or",
    "cardinality",
    "ceil",
    "ceiling",
    "char_length",
    "character_length",
    "coalesce",
    "concat",
    "concat_ws",
    "contains",
    "corr",
    "count",
    "count_if",
    "covar_pop",
    "covar_samp",
    "cume_dist",
    "current_date",
    "current_time",
    "current_timestamp",
    "date_add",
    "date_diff",
    "date_part",
    "date_sub",
    "date_trunc",
    "datediff",
    "datepart",
    "datesub",
    "datetrunc",
    "day",
    "dayname",
    "dayofmonth",
    "dayofweek",
    "dayofyear",
    "dense_rank",
    "ends_with",
    "epoch",
    "epoch_ms",
    "epoch_us",
    "exp",
    "extract",
    "first",
    "first_value",
    "flatten",
    "floor",
    "greatest",
    "grouping",
    "hour",
    "if",
    "iff",
    "ifnull",
    "ilike_escape",
    "instr",
    "isfinite",
    "isinf",
    "isnan",
    "isodow",
    "isoyear",
    "json_array",
    "json_array_length",
    "json_contains",
    "json_exists",
    "json_extract",
    "json_extract_path",
    "json_extract_path_text",
    "json_extract_string",
    "json_group_array",
    "json_group_object",
    "json_keys",
    "json_object",
    "json_type",
    "json_valid",
    "json_value",
    "lag",
    "last",
    "last_day",
    "last_value",
    "lcase",
    "lead",
    "least",
    "left",
    "len",
    "length",
    "like_escape",
    "list",
    "list_aggregate",
    "list_any_value",
    "list_avg",
    "list_concat",
    "list_contains",
    "list_count",
    "list_distinct",
    "list_element",
    "list_extract",
    "list_filter",
    "list_has",
    "list_has_all",
    "list_has_any",
    "list_max",
    "list_min",
    "list_position",
    "list_reverse_sort",
    "list_slice",
    "list_sort",
    "list_sum",
    "list_transform",
    "list_unique",
    "list_value",
    "ln",
    "localtime",
    "localtimestamp",
    "log",
    "log10",
    "log2",
    "lower",
    "ltrim",
    "make_date",
    "make_time",
    "make_timestamp",
    "max",
    "max_by",
    "mean",
    "median",
    "min",
    "min_by",
    "minute",
    "mod",
    "mode",
    "month",
    "monthname",
    "now",
    "nth_value",
    "ntile",
    "nullif",
    "percent_rank",
    "percentile_cont",
    "percentile_disc",
    "position",
    "pow",
    "power",
    "prefix",
    "quantile",
    "quantile_cont",
    "quantile_disc",
    "quarter",
    "random",
    "rank",
    "regexp_extract",
    "regexp_extract_all",
    "regexp_full_match",
    "regexp_matches",
    "regexp_replace",
    "regexp_split_to_array",
    "replace",
    "reverse",
    "right",
    "round",
    "row_number",
    "rtrim",
    "second",
    "sign",
    "split_part",
    "sqrt",
    "starts_with",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "str_split",
    "strftime",
    "string_agg",
    "string_split",
    "strlen",
    "strpos",
    "strptime",
    "struct_extract",
    "struct_pack",
    "substr",
    "substring",
    "suffix",
    "sum",
    "time_bucket",
    "to_days",
    "to_hours",
    "to_json",
    "to_microseconds",
    "to_milliseconds",
    "to_minutes",
    "to_months",
    "to_seconds",
    "to_timestamp",
    "to_weeks",
    "to_years",
    "today",
    "trim",
    "trunc",
    "try_strptime",
    "ucase",
    "upper",
    "var_pop",
    "var_samp",
    "variance",
    "week",
    "weekday",
    "weekofyear",
    "year",
];

/// Words DuckDB evaluates as functions when written bare (`SELECT current_catalog`); they
/// would reveal the database's name or user, so they are refused as identifiers.
const BARE_FUNCTIONS: &[&str] =
    &["current_catalog", "current_role", "current_schema", "current_user", "session_user", "user"];

/// A query made safe to run for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandboxed {
    /// DuckDB SQL: the views the query reads as CTEs, then the rewritten query.
    pub sql: String,
    /// How many parameters it takes (`$1 .. $placeholders`).
    pub placeholders: usize,
}

/// Why a query was refused: a stable slug (one of [`rule`]) and a sentence for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: &'static str,
    pub detail: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

impl std::error::Error for Refusal {}

fn refuse<T>(rule: &'static str, detail: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal { rule, detail: detail.into() })
}

/// Checks `sql` and rewrites it to read only `tenant`'s rows; `param_count` is the number of
/// values the caller will bind, which must equal the number of `?` placeholders.
pub fn sandbox(sql: &str, tenant: &TenantId, param_count: usize) -> Result<Sandboxed, Refusal> {
    let chars = sql.chars().count();
    if chars > MAX_SQL_CHARS {
        return refuse(
            rule::TOO_LONG,
            format!("the query has {chars} characters; at most {MAX_SQL_CHARS} are allowed"),
        );
    }
    let dialect = DuckDbDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .or_else(|e| refuse(rule::PARSE_ERROR, format!("the query could not be read: {e}")))?;
    let placeholders = check_tokens(&tokens)?;

    let mut statements = Parser::new(&dialect)
        .with_recursion_limit(PARSER_RECURSION_LIMIT)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .or_else(|e| match e {
            ParserError::RecursionLimitExceeded => {
                refuse(rule::TOO_DEEP, "the query nests expressions or subqueries too deeply")
            }
            other => refuse(rule::PARSE_ERROR, format!("the query could not be parsed: {other}")),
        })?;
    if statements.len() != 1 {
        return refuse(
            rule::ONE_STATEMENT,
            format!("the query holds {} statements; exactly one SELECT is allowed", statements.len()),
        );
    }
    let Some(Statement::Query(mut query)) = statements.pop() else {
        return refuse(rule::SELECT_ONLY, "only a query (SELECT) may run");
    };

    let mut walker = Walker::new(&placeholders);
    walker.query(&mut query).map_err(|refusal| *refusal)?;
    let bound = walker.bound.iter().filter(|b| **b).count();
    if bound != placeholders.len() {
        return refuse(
            rule::PARAMETERS,
            format!("{} of the query's `?` placeholders stand where no value can be bound", placeholders.len() - bound),
        );
    }
    if placeholders.len() != param_count {
        return refuse(
            rule::PARAMETERS,
            format!(
                "the query has {} `?` placeholder(s) but {param_count} parameter(s) were given",
                placeholders.len()
            ),
        );
    }
    let used = walker.used;
    Ok(Sandboxed { sql: render(*query, tenant, &used), placeholders: placeholders.len() })
}

/// Token-level checks, before any recursion: nesting depth, statement count, the leading
/// keyword, literal and quoting styles, reserved names and placeholder style. Returns the
/// start (line, column) of each `?` in text order.
fn check_tokens(tokens: &[TokenWithSpan]) -> Result<Vec<(u64, u64)>, Refusal> {
    let significant = || tokens.iter().filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF));

    let (mut depth, mut deepest) = (0usize, 0usize);
    for t in significant() {
        match t.token {
            Token::LParen | Token::LBracket | Token::LBrace => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        return refuse(
            rule::TOO_DEEP,
            format!("the query nests brackets {deepest} deep; at most {MAX_NESTING} levels are allowed"),
        );
    }

    let mut statements = 0;
    let mut in_statement = false;
    for t in significant() {
        if t.token == Token::SemiColon {
            in_statement = false;
        } else if !in_statement {
            in_statement = true;
            statements += 1;
        }
    }
    if statements != 1 {
        return refuse(
            rule::ONE_STATEMENT,
            if statements == 0 {
                "the query is empty; exactly one SELECT is expected".to_owned()
            } else {
                format!("the query holds {statements} statements separated by `;`; exactly one SELECT is allowed")
            },
        );
    }

    let first = significant().next().map(|t| &t.token);
    let starts_a_query = match first {
        Some(Token::Word(w)) => {
            w.quote_style.is_none()
                && matches!(w.keyword, Keyword::SELECT | Keyword::WITH | Keyword::FROM | Keyword::VALUES)
        }
        Some(Token::LParen) => true,
        _ => false,
    };
    if !starts_a_query {
        let found = match first {
            Some(Token::Word(w)) => w.value.to_uppercase(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        return refuse(
            rule::SELECT_ONLY,
            format!(
                "found a statement starting with `{found}`; only a query (SELECT, WITH ... SELECT, FROM ...) may run"
            ),
        );
    }

    let mut placeholders = Vec::new();
    for t in significant() {
        match &t.token {
            Token::Word(w) => {
                if let Some(q) = w.quote_style.filter(|q| *q != '"') {
                    return refuse(
                        rule::SYNTAX_NOT_ALLOWED,
                        format!("the identifier {q}{}{q} is quoted with {q}; quote identifiers with \"", w.value),
                    );
                }
                if w.value.to_ascii_lowercase().starts_with(RESERVED_PREFIX) {
                    return refuse(
                        rule::RESERVED_NAME,
                        format!("`{}`: names starting with {RESERVED_PREFIX} are reserved", w.value),
                    );
                }
            }
            Token::Placeholder(p) if p == "?" => placeholders.push((t.span.start.line, t.span.start.column)),
            Token::Placeholder(p) => {
                return refuse(
                    rule::PARAMETERS,
                    format!("the placeholder `{p}` is not supported; write `?` and pass values in order"),
                );
            }
            Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_) => {
                return refuse(
                    rule::SYNTAX_NOT_ALLOWED,
                    format!("the literal {} is not allowed; write strings as '...'", t.token),
                );
            }
            Token::CopyData { .. } => return refuse(rule::SYNTAX_NOT_ALLOWED, "COPY data is not allowed"),
            _ => {}
        }
    }
    Ok(placeholders)
}

/// The walker's result: the refusal is boxed so that the many `?` on the recursive path keep
/// debug-build stack frames small.
type Walk = Result<(), Box<Refusal>>;

/// Builds a refusal out of line, so that formatting never sits in a recursive frame.
#[cold]
#[inline(never)]
fn fail(rule: &'static str, detail: String) -> Box<Refusal> {
    Box::new(Refusal { rule, detail })
}

#[cold]
#[inline(never)]
fn unsupported(what: &str) -> Box<Refusal> {
    fail(rule::SYNTAX_NOT_ALLOWED, format!("{what} is not allowed in a custom query"))
}

#[cold]
#[inline(never)]
fn unsupported_node(what: &str, node: &dyn fmt::Display) -> Box<Refusal> {
    fail(rule::SYNTAX_NOT_ALLOWED, format!("{what} ({}) is not allowed in a custom query", short(node)))
}

#[cold]
#[inline(never)]
fn too_deep_tree() -> Box<Refusal> {
    fail(
        rule::TOO_DEEP,
        format!(
            "the query's syntax tree is deeper than {MAX_TREE_DEPTH} levels (a very long chain of operators or set operations)"
        ),
    )
}

#[cold]
#[inline(never)]
fn table_function(what: &dyn fmt::Display) -> Box<Refusal> {
    fail(
        rule::TABLE_FUNCTION,
        format!(
            "`{}` is a table function; FROM may name only the views ({}) and the query's CTEs",
            short(what),
            views_list()
        ),
    )
}

#[cold]
#[inline(never)]
fn function_not_allowed(name: &str) -> Box<Refusal> {
    fail(rule::FUNCTION_NOT_ALLOWED, format!("the function `{name}` is not on the allow-list of custom queries"))
}

#[cold]
#[inline(never)]
fn qualified_function(name: &ObjectName) -> Box<Refusal> {
    let last = name.0.last().map(|p| p.to_string()).unwrap_or_default();
    fail(
        rule::QUALIFIED_NAME,
        format!(
            "`{name}(...)` is a qualified function name; call functions unqualified, as `{last}(x)` rather than `x.{last}()`"
        ),
    )
}

#[cold]
#[inline(never)]
fn placeholder_not_numbered() -> Box<Refusal> {
    fail(rule::PARAMETERS, "a `?` placeholder could not be numbered".to_owned())
}

/// A node the walker still has to visit: [`Walker::check_expr`] checks one expression
/// without recursing and hands back its children.
enum Child<'a> {
    Expr(&'a mut Expr),
    Query(&'a mut Query),
}

/// Walks a parsed query by allow-list: checks every node, renames table references to the
/// view CTEs and the query's own CTEs, and numbers the placeholders.
struct Walker {
    /// CTEs in scope, innermost `WITH` last: (name folded to lower case, new name).
    scopes: Vec<Vec<(String, String)>>,
    next_cte: usize,
    /// Which of [`VIEWS`] the query reads.
    used: [bool; VIEWS.len()],
    /// `?` start position -> its 1-based number in text order.
    placeholder_at: HashMap<(u64, u64), usize>,
    bound: Vec<bool>,
    depth: usize,
}

fn fold(ident: &Ident) -> String {
    ident.value.to_ascii_lowercase()
}

fn views_list() -> String {
    VIEWS.join(", ")
}

impl Walker {
    fn new(placeholders: &[(u64, u64)]) -> Self {
        Self {
            scopes: Vec::new(),
            next_cte: 0,
            used: [false; VIEWS.len()],
            placeholder_at: placeholders.iter().enumerate().map(|(i, at)| (*at, i + 1)).collect(),
            bound: vec![false; placeholders.len()],
            depth: 0,
        }
    }

    fn enter(&mut self) -> Walk {
        self.depth += 1;
        if self.depth > MAX_TREE_DEPTH {
            return Err(too_deep_tree());
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn query(&mut self, q: &mut Query) -> Walk {
        self.enter()?;
        if !q.locks.is_empty() {
            return Err(unsupported("a row lock (FOR UPDATE / FOR SHARE)"));
        }
        if q.for_clause.is_some() || q.settings.is_some() || q.format_clause.is_some() {
            return Err(unsupported("a FOR, SETTINGS or FORMAT clause"));
        }
        if !q.pipe_operators.is_empty() {
            return Err(unsupported("a pipe operator (|>)"));
        }
        let scoped = match &mut q.with {
            Some(with) => {
                if with.recursive {
                    return Err(unsupported("WITH RECURSIVE"));
                }
                self.scopes.push(Vec::new());
                for cte in &mut with.cte_tables {
                    self.cte(cte)?;
                }
                true
            }
            None => false,
        };
        self.set_expr(&mut q.body)?;
        if let Some(order_by) = &mut q.order_by {
            if order_by.interpolate.is_some() {
                return Err(unsupported("INTERPOLATE"));
            }
            if let OrderByKind::Expressions(exprs) = &mut order_by.kind {
                self.order_by_exprs(exprs)?;
            }
        }
        match &mut q.limit_clause {
            None => {}
            Some(LimitClause::LimitOffset { limit, offset, limit_by }) => {
                if !limit_by.is_empty() {
                    return Err(unsupported("LIMIT BY"));
                }
                if let Some(limit) = limit {
                    self.expr(limit)?;
                }
                if let Some(offset) = offset {
                    self.expr(&mut offset.value)?;
                }
            }
            Some(LimitClause::OffsetCommaLimit { .. }) => {
                return Err(unsupported("LIMIT offset, count (write LIMIT count OFFSET offset)"));
            }
        }
        if let Some(fetch) = &mut q.fetch
            && let Some(quantity) = &mut fetch.quantity
        {
            self.expr(quantity)?;
        }
        if scoped {
            self.scopes.pop();
        }
        self.leave();
        Ok(())
    }

    /// A CTE's body sees the CTEs before it (already in the innermost scope), not itself.
    fn cte(&mut self, cte: &mut Cte) -> Walk {
        if cte.from.is_some() || cte.alias.at.is_some() {
            return Err(unsupported("CTE ... FROM / AT"));
        }
        self.query(&mut cte.query)?;
        let name = fold(&cte.alias.name);
        let scope = self.scopes.last_mut().expect("a WITH pushed a scope");
        if scope.iter().any(|(n, _)| *n == name) {
            return Err(fail(
                rule::SYNTAX_NOT_ALLOWED,
                format!("the CTE name `{}` is defined twice in one WITH", cte.alias.name.value),
            ));
        }
        let renamed = format!("{RESERVED_PREFIX}cte_{}", self.next_cte);
        self.next_cte += 1;
        scope.push((name, renamed.clone()));
        cte.alias.name = Ident::new(renamed);
        Ok(())
    }

    fn set_expr(&mut self, body: &mut SetExpr) -> Walk {
        self.enter()?;
        match body {
            SetExpr::Select(select) => self.select(select)?,
            SetExpr::Query(query) => self.query(query)?,
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left)?;
                self.set_expr(right)?;
            }
            SetExpr::Values(values) => {
                for row in &mut values.rows {
                    self.exprs(&mut row.content)?;
                }
            }
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                return Err(fail(
                    rule::SELECT_ONLY,
                    "found INSERT, UPDATE, DELETE or MERGE inside the query; only reads may run".to_owned(),
                ));
            }
            SetExpr::Table(_) => return Err(unsupported("TABLE name (write SELECT * FROM name)")),
        }
        self.leave();
        Ok(())
    }

    fn select(&mut self, s: &mut Select) -> Walk {
        if s.into.is_some() {
            return Err(fail(rule::SELECT_ONLY, "SELECT ... INTO creates a table; only reads may run".to_owned()));
        }
        if !s.optimizer_hints.is_empty() || s.select_modifiers.is_some() || s.top.is_some() {
            return Err(unsupported("an optimizer hint, SELECT modifier or TOP"));
        }
        if !s.lateral_views.is_empty()
            || s.prewhere.is_some()
            || !s.connect_by.is_empty()
            || !s.cluster_by.is_empty()
            || !s.distribute_by.is_empty()
            || !s.sort_by.is_empty()
            || s.value_table_mode.is_some()
        {
            return Err(unsupported(
                "LATERAL VIEW, PREWHERE, CONNECT BY, CLUSTER/DISTRIBUTE/SORT BY or SELECT AS VALUE",
            ));
        }
        for twj in &mut s.from {
            self.table_with_joins(twj)?;
        }
        if let Some(Distinct::On(exprs)) = &mut s.distinct {
            self.exprs(exprs)?;
        }
        for item in &mut s.projection {
            self.select_item(item)?;
        }
        if let Some(selection) = &mut s.selection {
            self.expr(selection)?;
        }
        let (GroupByExpr::All(modifiers) | GroupByExpr::Expressions(_, modifiers)) = &s.group_by;
        if !modifiers.is_empty() {
            return Err(unsupported("GROUP BY ... WITH ROLLUP/CUBE/TOTALS"));
        }
        if let GroupByExpr::Expressions(exprs, _) = &mut s.group_by {
            self.exprs(exprs)?;
        }
        if let Some(having) = &mut s.having {
            self.expr(having)?;
        }
        for window in &mut s.named_window {
            if let NamedWindowExpr::WindowSpec(spec) = &mut window.1 {
                let mut children = Vec::new();
                window_spec_children(spec, &mut children)?;
                self.children(children)?;
            }
        }
        if let Some(qualify) = &mut s.qualify {
            self.expr(qualify)?;
        }
        Ok(())
    }

    fn select_item(&mut self, item: &mut SelectItem) -> Walk {
        let options = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => return self.expr(e),
            SelectItem::ExprWithAliases { .. } => return Err(unsupported("an expression with several aliases")),
            SelectItem::QualifiedWildcard(kind, options) => {
                if let SelectItemQualifiedWildcardKind::Expr(e) = kind {
                    self.expr(e)?;
                }
                options
            }
            SelectItem::Wildcard(options) => options,
        };
        self.wildcard_options(options)
    }

    fn wildcard_options(&mut self, options: &mut WildcardAdditionalOptions) -> Walk {
        if let Some(replace) = &mut options.opt_replace {
            for element in &mut replace.items {
                self.expr(&mut element.expr)?;
            }
        }
        Ok(())
    }

    fn table_with_joins(&mut self, twj: &mut TableWithJoins) -> Walk {
        self.table_factor(&mut twj.relation)?;
        for join in &mut twj.joins {
            if join.global {
                return Err(unsupported("GLOBAL JOIN"));
            }
            self.table_factor(&mut join.relation)?;
            let constraint = match &mut join.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::FullOuter(c)
                | JoinOperator::CrossJoin(c)
                | JoinOperator::Semi(c)
                | JoinOperator::LeftSemi(c)
                | JoinOperator::RightSemi(c)
                | JoinOperator::Anti(c)
                | JoinOperator::LeftAnti(c)
                | JoinOperator::RightAnti(c) => c,
                _ => return Err(unsupported("this join (ASOF, APPLY, STRAIGHT_JOIN, ARRAY JOIN)")),
            };
            match constraint {
                JoinConstraint::On(e) => self.expr(e)?,
                JoinConstraint::Using(_) | JoinConstraint::Natural | JoinConstraint::None => {}
                JoinConstraint::UsingAlias(..) => return Err(unsupported("USING (...) AS alias")),
            }
        }
        Ok(())
    }

    fn table_factor(&mut self, factor: &mut TableFactor) -> Walk {
        self.enter()?;
        match factor {
            TableFactor::Table { .. } => self.table(factor)?,
            TableFactor::Derived { subquery, alias, sample, .. } => {
                if sample.is_some() || alias.as_ref().is_some_and(|a| a.at.is_some()) {
                    return Err(unsupported("TABLESAMPLE or an alias with AT"));
                }
                self.query(subquery)?;
            }
            TableFactor::NestedJoin { table_with_joins, .. } => self.table_with_joins(table_with_joins)?,
            TableFactor::TableFunction { .. }
            | TableFactor::Function { .. }
            | TableFactor::UNNEST { .. }
            | TableFactor::JsonTable { .. }
            | TableFactor::OpenJsonTable { .. } => return Err(table_function(factor)),
            _ => return Err(unsupported_node("this FROM item", factor)),
        }
        self.leave();
        Ok(())
    }

    /// A named table in FROM: a CTE in scope or a view, renamed; the name it was written
    /// with stays as its alias so that `events.user_id` still resolves.
    fn table(&mut self, factor: &mut TableFactor) -> Walk {
        let TableFactor::Table {
            name,
            alias,
            args,
            with_hints,
            version,
            with_ordinality,
            partitions,
            json_path,
            sample,
            index_directives,
            inheritance,
        } = factor
        else {
            unreachable!("table() is called on TableFactor::Table");
        };
        if args.is_some() {
            return Err(table_function(&format!("{name}(...)")));
        }
        if !with_hints.is_empty()
            || version.is_some()
            || *with_ordinality
            || !partitions.is_empty()
            || json_path.is_some()
            || sample.is_some()
            || !index_directives.is_empty()
            || inheritance.is_some()
            || alias.as_ref().is_some_and(|a| a.at.is_some())
        {
            return Err(unsupported("a table hint, sample, version, partition or index directive"));
        }
        let ident = table_ident(name)?;
        let renamed = self.resolve(&ident)?;
        if alias.is_none() {
            *alias = Some(TableAlias { explicit: true, name: ident, columns: Vec::new(), at: None });
        }
        *name = ObjectName::from(vec![Ident::new(renamed)]);
        Ok(())
    }

    /// The new name of a table reference: a CTE in scope, else a view.
    fn resolve(&mut self, ident: &Ident) -> Result<String, Box<Refusal>> {
        let name = fold(ident);
        for scope in self.scopes.iter().rev() {
            if let Some((_, renamed)) = scope.iter().rev().find(|(n, _)| *n == name) {
                return Ok(renamed.clone());
            }
        }
        match VIEWS.iter().position(|v| *v == name) {
            Some(i) => {
                self.used[i] = true;
                Ok(format!("{RESERVED_PREFIX}{name}"))
            }
            None => Err(fail(
                rule::UNKNOWN_TABLE,
                format!(
                    "`{}` is neither a view ({}) nor a CTE defined earlier in the query",
                    ident.value,
                    views_list()
                ),
            )),
        }
    }

    fn exprs(&mut self, exprs: &mut [Expr]) -> Walk {
        for e in exprs {
            self.expr(e)?;
        }
        Ok(())
    }

    /// The recursive step: a small frame, since [`Walker::check_expr`] does the checking.
    fn expr(&mut self, e: &mut Expr) -> Walk {
        self.enter()?;
        let mut children = Vec::new();
        self.check_expr(e, &mut children)?;
        self.children(children)?;
        self.leave();
        Ok(())
    }

    fn children(&mut self, children: Vec<Child<'_>>) -> Walk {
        for child in children {
            match child {
                Child::Expr(e) => self.expr(e)?,
                Child::Query(q) => self.query(q)?,
            }
        }
        Ok(())
    }

    /// Checks one expression node (and any function call it is) without recursing; pushes
    /// the expressions and queries below it.
    fn check_expr<'a>(&mut self, e: &'a mut Expr, children: &mut Vec<Child<'a>>) -> Walk {
        match e {
            Expr::Identifier(ident) => {
                if ident.quote_style.is_none() && BARE_FUNCTIONS.contains(&fold(ident).as_str()) {
                    return Err(fail(
                        rule::FUNCTION_NOT_ALLOWED,
                        format!("`{}` is a function that reveals the database; it is not allowed", ident.value),
                    ));
                }
            }
            Expr::CompoundIdentifier(_) | Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => {}
            Expr::CompoundFieldAccess { root, access_chain } => {
                children.push(Child::Expr(root));
                for access in access_chain {
                    match access {
                        AccessExpr::Dot(Expr::Identifier(_)) => {}
                        AccessExpr::Dot(Expr::Function(f)) => check_function(f, children)?,
                        AccessExpr::Dot(other) => children.push(Child::Expr(other)),
                        AccessExpr::Subscript(Subscript::Index { index }) => children.push(Child::Expr(index)),
                        AccessExpr::Subscript(Subscript::Slice { lower_bound, upper_bound, stride }) => {
                            children.extend([lower_bound, upper_bound, stride].into_iter().flatten().map(Child::Expr));
                        }
                    }
                }
            }
            Expr::IsFalse(x)
            | Expr::IsNotFalse(x)
            | Expr::IsTrue(x)
            | Expr::IsNotTrue(x)
            | Expr::IsNull(x)
            | Expr::IsNotNull(x)
            | Expr::IsUnknown(x)
            | Expr::IsNotUnknown(x)
            | Expr::Nested(x)
            | Expr::UnaryOp { expr: x, .. }
            | Expr::Extract { expr: x, .. }
            | Expr::Ceil { expr: x, .. }
            | Expr::Floor { expr: x, .. }
            | Expr::Collate { expr: x, .. } => children.push(Child::Expr(x)),
            Expr::IsDistinctFrom(a, b)
            | Expr::IsNotDistinctFrom(a, b)
            | Expr::AtTimeZone { timestamp: a, time_zone: b }
            | Expr::Position { expr: a, r#in: b }
            | Expr::AnyOp { left: a, right: b, .. }
            | Expr::AllOp { left: a, right: b, .. } => children.extend([Child::Expr(a), Child::Expr(b)]),
            Expr::BinaryOp { left, op, right } => {
                use sqlparser::ast::BinaryOperator as B;
                if matches!(op, B::Custom(_) | B::PGCustomBinaryOperator(_)) {
                    return Err(unsupported_node("the operator", op));
                }
                children.extend([Child::Expr(left), Child::Expr(right)]);
            }
            Expr::In { expr, target, global, .. } => {
                if *global {
                    return Err(unsupported("GLOBAL IN"));
                }
                children.push(Child::Expr(expr));
                match target {
                    InTarget::List(list) => children.extend(list.iter_mut().map(Child::Expr)),
                    InTarget::Subquery(q) => children.push(Child::Query(q)),
                    InTarget::Unnest(_) | InTarget::Table { .. } => {
                        return Err(unsupported("IN UNNEST(...) / IN table"));
                    }
                }
            }
            Expr::Between { expr, low, high, .. } => {
                children.extend([Child::Expr(expr), Child::Expr(low), Child::Expr(high)]);
            }
            Expr::Like { expr, pattern, escape_char, .. }
            | Expr::ILike { expr, pattern, escape_char, .. }
            | Expr::SimilarTo { expr, pattern, escape_char, .. } => {
                children.extend([Child::Expr(expr), Child::Expr(pattern)]);
                children.extend(escape_char.as_deref_mut().map(Child::Expr));
            }
            Expr::Cast { expr, format, .. } => {
                if format.is_some() {
                    return Err(unsupported("CAST ... FORMAT"));
                }
                children.push(Child::Expr(expr));
            }
            Expr::Substring { expr, substring_from, substring_for, .. } => {
                children.push(Child::Expr(expr));
                children.extend([substring_from, substring_for].into_iter().flatten().map(|x| Child::Expr(x)));
            }
            Expr::Trim { expr, trim_what, trim_characters, .. } => {
                children.push(Child::Expr(expr));
                children.extend(trim_what.as_deref_mut().map(Child::Expr));
                children.extend(trim_characters.iter_mut().flatten().map(Child::Expr));
            }
            Expr::Overlay { expr, overlay_what, overlay_from, overlay_for } => {
                children.extend([Child::Expr(expr), Child::Expr(overlay_what), Child::Expr(overlay_from)]);
                children.extend(overlay_for.as_deref_mut().map(Child::Expr));
            }
            Expr::Value(v) => self.value(v)?,
            Expr::TypedString(t) => {
                if t.uses_odbc_syntax {
                    return Err(unsupported("ODBC literal syntax"));
                }
                self.value(&mut t.value)?;
            }
            Expr::Function(f) => check_function(f, children)?,
            Expr::Case { operand, conditions, else_result, .. } => {
                children.extend(operand.as_deref_mut().map(Child::Expr));
                for when in conditions {
                    children.extend([Child::Expr(&mut when.condition), Child::Expr(&mut when.result)]);
                }
                children.extend(else_result.as_deref_mut().map(Child::Expr));
            }
            Expr::Exists { subquery, .. } | Expr::Subquery(subquery) => children.push(Child::Query(subquery)),
            Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
                children.extend(sets.iter_mut().flatten().map(Child::Expr));
            }
            Expr::Tuple(xs) => children.extend(xs.iter_mut().map(Child::Expr)),
            Expr::Array(array) => children.extend(array.elem.iter_mut().map(Child::Expr)),
            Expr::Dictionary(fields) => children.extend(fields.iter_mut().map(|f| Child::Expr(&mut f.value))),
            Expr::Map(map) => {
                for entry in &mut map.entries {
                    children.extend([Child::Expr(&mut entry.key), Child::Expr(&mut entry.value)]);
                }
            }
            Expr::Interval(interval) => children.push(Child::Expr(&mut interval.value)),
            Expr::Lambda(lambda) => children.push(Child::Expr(&mut lambda.body)),
            other => return Err(unsupported_node("this expression", other)),
        }
        Ok(())
    }

    fn value(&mut self, v: &mut ValueWithSpan) -> Walk {
        match &v.value {
            Value::Number(..) | Value::SingleQuotedString(_) | Value::Boolean(_) | Value::Null => Ok(()),
            Value::Placeholder(p) if p == "?" => {
                let at = (v.span.start.line, v.span.start.column);
                match self.placeholder_at.get(&at) {
                    Some(&n) if !self.bound[n - 1] => {
                        self.bound[n - 1] = true;
                        v.value = Value::Placeholder(format!("${n}"));
                        Ok(())
                    }
                    _ => Err(placeholder_not_numbered()),
                }
            }
            Value::Placeholder(p) => Err(fail(
                rule::PARAMETERS,
                format!("the placeholder `{p}` is not supported; write `?` and pass values in order"),
            )),
            other => Err(unsupported_node("the literal", other)),
        }
    }

    fn order_by_exprs(&mut self, exprs: &mut [OrderByExpr]) -> Walk {
        let mut children = Vec::new();
        order_by_children(exprs, &mut children)?;
        self.children(children)
    }
}

/// The one-part name of a table reference.
fn table_ident(name: &ObjectName) -> Result<Ident, Box<Refusal>> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] if ident.quote_style == Some('\'') => Err(fail(
            rule::TABLE_FUNCTION,
            format!(
                "FROM '{}' would read a file; FROM may name only the views ({}) and the query's CTEs",
                ident.value,
                views_list()
            ),
        )),
        [ObjectNamePart::Identifier(ident)] => Ok(ident.clone()),
        [_] => Err(unsupported("a computed table name")),
        _ => Err(fail(
            rule::QUALIFIED_NAME,
            format!(
                "`{name}` is a schema- or catalog-qualified name; name one of the views ({}) or a CTE of the query, unqualified",
                views_list()
            ),
        )),
    }
}

/// Checks a function call against the allow-list and pushes its arguments, ordering,
/// filter and window.
fn check_function<'a>(f: &'a mut Function, children: &mut Vec<Child<'a>>) -> Walk {
    let name = match f.name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => fold(ident),
        [_] => return Err(unsupported("a computed function name")),
        _ => return Err(qualified_function(&f.name)),
    };
    if FUNCTIONS.binary_search(&name.as_str()).is_err() {
        return Err(function_not_allowed(&name));
    }
    if f.uses_odbc_syntax || !matches!(f.parameters, FunctionArguments::None) {
        return Err(unsupported("ODBC or parametric function syntax"));
    }
    match &mut f.args {
        FunctionArguments::None => {}
        FunctionArguments::Subquery(q) => children.push(Child::Query(q)),
        FunctionArguments::List(list) => {
            for arg in &mut list.args {
                let arg = match arg {
                    FunctionArg::Named { arg, .. } | FunctionArg::Unnamed(arg) => arg,
                    FunctionArg::ExprNamed { .. } => return Err(unsupported("an argument named by an expression")),
                };
                match arg {
                    FunctionArgExpr::Expr(e) => children.push(Child::Expr(e)),
                    FunctionArgExpr::Wildcard | FunctionArgExpr::QualifiedWildcard(_) => {}
                    FunctionArgExpr::WildcardWithOptions(_) => {
                        return Err(unsupported("* with options as an argument"));
                    }
                }
            }
            for clause in &mut list.clauses {
                match clause {
                    FunctionArgumentClause::IgnoreOrRespectNulls(_) => {}
                    FunctionArgumentClause::OrderBy(order) => order_by_children(order, children)?,
                    FunctionArgumentClause::Limit(e) => children.push(Child::Expr(e)),
                    other => return Err(unsupported_node("the argument clause", other)),
                }
            }
        }
    }
    order_by_children(&mut f.within_group, children)?;
    children.extend(f.filter.as_deref_mut().map(Child::Expr));
    if let Some(WindowType::WindowSpec(spec)) = &mut f.over {
        window_spec_children(spec, children)?;
    }
    Ok(())
}

fn window_spec_children<'a>(spec: &'a mut WindowSpec, children: &mut Vec<Child<'a>>) -> Walk {
    children.extend(spec.partition_by.iter_mut().map(Child::Expr));
    order_by_children(&mut spec.order_by, children)?;
    if let Some(frame) = &mut spec.window_frame {
        for bound in [Some(&mut frame.start_bound), frame.end_bound.as_mut()].into_iter().flatten() {
            if let WindowFrameBound::Preceding(Some(x)) | WindowFrameBound::Following(Some(x)) = bound {
                children.push(Child::Expr(x));
            }
        }
    }
    Ok(())
}

fn order_by_children<'a>(exprs: &'a mut [OrderByExpr], children: &mut Vec<Child<'a>>) -> Walk {
    for o in exprs {
        if o.with_fill.is_some() {
            return Err(unsupported("WITH FILL"));
        }
        children.push(Child::Expr(&mut o.expr));
    }
    Ok(())
}

/// A short description of a node for a refusal: its rendering, cut to 60 characters.
fn short(node: &dyn fmt::Display) -> String {
    let text = node.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// A view's definition over the base tables; `{tenant}` stands for the tenant's literal.
struct Definition {
    name: &'static str,
    body: &'static str,
}

/// In dependency order. Simple filters are NOT MATERIALIZED so that the query's own
/// predicates reach the base-table scan; aggregated views keep DuckDB's default.
const DEFINITIONS: &[Definition] = &[
    Definition {
        name: "__sl_events",
        body: "AS NOT MATERIALIZED (SELECT event_id, event_name, user_id, session_id, ts AS \"timestamp\", \
               properties, context FROM main.events WHERE tenant_id = '{tenant}')",
    },
    Definition { name: "__sl_sessionized", body: crate::query::session::SANDBOX_SESSIONIZED },
    Definition {
        name: "__sl_sessions",
        body: "AS (SELECT session_id, arg_min(user_id, ts) FILTER (WHERE user_id IS NOT NULL) AS user_id, \
               min(ts) AS started_at, max(ts) AS ended_at, \
               date_diff('microsecond', min(ts), max(ts)) / 1e6 AS duration_seconds, count(*) AS events \
               FROM __sl_sessionized GROUP BY session_id)",
    },
    Definition {
        name: "__sl_users",
        body: "AS (SELECT user_id, min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS events, \
               count(DISTINCT session_id) AS sessions \
               FROM __sl_sessionized WHERE user_id IS NOT NULL GROUP BY user_id)",
    },
    Definition {
        name: "__sl_conversations",
        body: "AS (SELECT conversation_id, \
               arg_min(user_id, ts) FILTER (WHERE user_id IS NOT NULL) AS user_id, \
               arg_min(bot_id, ts) FILTER (WHERE bot_id IS NOT NULL) AS bot_id, \
               arg_min(channel, ts) FILTER (WHERE channel IS NOT NULL) AS channel, \
               min(ts) AS started_at, max(ts) AS ended_at, \
               date_diff('microsecond', min(ts), max(ts)) / 1e6 AS duration_seconds, \
               date_diff('microsecond', min(ts), max(ts)) / 1e6 AS duration, \
               CAST(min(ts) AS DATE) AS date, \
               count(*) FILTER (WHERE event_name = 'message') AS messages \
               FROM (SELECT properties ->> 'conversation_id' AS conversation_id, event_name, user_id, ts, \
               properties ->> 'bot_id' AS bot_id, properties ->> 'channel' AS channel \
               FROM main.events WHERE tenant_id = '{tenant}') \
               WHERE conversation_id IS NOT NULL GROUP BY conversation_id)",
    },
    Definition {
        name: "__sl_messages",
        body: "AS NOT MATERIALIZED (SELECT event_id, properties ->> 'conversation_id' AS conversation_id, user_id, \
               properties ->> 'role' AS role, \
               TRY_CAST(properties ->> 'token_count' AS BIGINT) AS token_count, \
               TRY_CAST(properties ->> 'response_time_ms' AS DOUBLE) AS response_time_ms, \
               properties ->> 'model' AS model, \
               TRY_CAST(properties ->> 'cost' AS DOUBLE) AS cost, \
               ts AS \"timestamp\" \
               FROM main.events WHERE tenant_id = '{tenant}' AND event_name = 'message')",
    },
    Definition {
        name: "__sl_metric_records",
        body: "AS NOT MATERIALIZED (SELECT id, service_name, metric_type, metric_name, value, ts AS \"timestamp\", \
               CAST(ts AS DATE) AS date, dimensions, meta \
               FROM main.metric_records WHERE tenant_id = '{tenant}')",
    },
];

/// The definitions a view needs, by name.
fn needs(view: &str) -> &'static [&'static str] {
    match view {
        "events" => &["__sl_events"],
        "sessions" => &["__sl_sessionized", "__sl_sessions"],
        "users" => &["__sl_sessionized", "__sl_users"],
        "conversations" => &["__sl_conversations"],
        "messages" => &["__sl_messages"],
        "metric_records" => &["__sl_metric_records"],
        _ => &[],
    }
}

/// `WITH <the used views' definitions>, <the query's own CTEs> <the query>`.
fn render(mut query: Query, tenant: &TenantId, used: &[bool; VIEWS.len()]) -> String {
    // TenantId admits only [A-Za-z0-9_.-]; doubling quotes keeps this a literal regardless.
    let tenant = tenant.as_str().replace('\'', "''");
    let wanted: Vec<&str> = VIEWS.iter().zip(used).filter(|(_, u)| **u).flat_map(|(v, _)| needs(v)).copied().collect();
    let mut ctes: Vec<String> = DEFINITIONS
        .iter()
        .filter(|d| wanted.contains(&d.name))
        .map(|d| format!("{} {}", d.name, d.body.replace("{tenant}", &tenant)))
        .collect();
    if let Some(with) = query.with.take() {
        ctes.extend(with.cte_tables.iter().map(|c| c.to_string()));
    }
    let body = query.to_string();
    if ctes.is_empty() { body } else { format!("WITH {} {body}", ctes.join(", ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "acme";
    /// Expected outcome of an input that is allowed: it runs, confined to the tenant.
    const CONFINED: &str = "confined";

    fn tenant() -> TenantId {
        TenantId::parse(TENANT).unwrap()
    }

    /// Hostile inputs, each with the rule that must refuse it, or [`CONFINED`] where the
    /// query is harmless and must come out reading only the tenant's rows. Run with no
    /// parameters.
    const HOSTILE: &[(&str, &str)] = &[
        // Other tenants' rows through the base tables, anywhere in the tree.
        ("SELECT * FROM main.events", rule::QUALIFIED_NAME),
        ("SELECT * FROM main.metric_records", rule::QUALIFIED_NAME),
        ("SELECT * FROM events e JOIN main.events m ON e.event_id = m.event_id", rule::QUALIFIED_NAME),
        ("SELECT * FROM events e LEFT JOIN main.metric_records m ON true", rule::QUALIFIED_NAME),
        ("SELECT (SELECT count(*) FROM main.events)", rule::QUALIFIED_NAME),
        ("SELECT * FROM events WHERE user_id IN (SELECT user_id FROM main.events)", rule::QUALIFIED_NAME),
        ("SELECT * FROM events WHERE EXISTS (SELECT 1 FROM main.metric_records)", rule::QUALIFIED_NAME),
        ("SELECT * FROM events WHERE user_id = ANY(SELECT user_id FROM main.events)", rule::QUALIFIED_NAME),
        ("SELECT * FROM (SELECT * FROM main.events) AS events", rule::QUALIFIED_NAME),
        (
            "SELECT * FROM events e, LATERAL (SELECT * FROM main.events WHERE user_id = e.user_id) x",
            rule::QUALIFIED_NAME,
        ),
        ("SELECT * FROM events ORDER BY (SELECT max(ts) FROM main.events)", rule::QUALIFIED_NAME),
        ("SELECT * FROM events LIMIT (SELECT count(*) FROM main.events)", rule::QUALIFIED_NAME),
        (
            "SELECT * FROM events GROUP BY ALL HAVING count(*) > (SELECT count(*) FROM main.events)",
            rule::QUALIFIED_NAME,
        ),
        (
            "SELECT count(*) FILTER (WHERE user_id IN (SELECT user_id FROM main.events)) FROM events",
            rule::QUALIFIED_NAME,
        ),
        ("SELECT row_number() OVER (PARTITION BY (SELECT 1 FROM main.events)) FROM events", rule::QUALIFIED_NAME),
        ("SELECT * FROM events QUALIFY (SELECT 1 FROM main.events LIMIT 1) = 1", rule::QUALIFIED_NAME),
        ("SELECT CASE WHEN true THEN (SELECT event_id FROM main.events LIMIT 1) END", rule::QUALIFIED_NAME),
        ("SELECT * FROM events JOIN sessions ON (SELECT true FROM main.events LIMIT 1)", rule::QUALIFIED_NAME),
        ("VALUES ((SELECT count(*) FROM main.events))", rule::QUALIFIED_NAME),
        ("SELECT * FROM (VALUES (1)) t(x), main.events", rule::QUALIFIED_NAME),
        ("SELECT list_transform([1], x -> (SELECT count(*) FROM main.events))", rule::QUALIFIED_NAME),
        ("SELECT {'a': (SELECT count(*) FROM main.events)}", rule::QUALIFIED_NAME),
        ("SELECT [(SELECT count(*) FROM main.events)]", rule::QUALIFIED_NAME),
        ("SELECT * FROM events WHERE user_id IN (FROM main.events SELECT user_id)", rule::QUALIFIED_NAME),
        ("SELECT * FROM (events JOIN main.metric_records ON true)", rule::QUALIFIED_NAME),
        ("SELECT * FROM events POSITIONAL JOIN main.events", rule::QUALIFIED_NAME),
        ("SELECT * REPLACE ((SELECT max(event_id) FROM main.events) AS event_id) FROM events", rule::QUALIFIED_NAME),
        ("SELECT json_extract((SELECT properties FROM main.events LIMIT 1), '$.a')", rule::QUALIFIED_NAME),
        ("SELECT * FROM events WHERE event_name = 'x' UNION ALL SELECT * FROM main.events", rule::QUALIFIED_NAME),
        ("SELECT user_id FROM users EXCEPT SELECT user_id FROM main.events", rule::QUALIFIED_NAME),
        ("SELECT user_id FROM users INTERSECT SELECT user_id FROM main.events", rule::QUALIFIED_NAME),
        ("(SELECT * FROM events) UNION (SELECT * FROM main.events)", rule::QUALIFIED_NAME),
        ("FROM main.events", rule::QUALIFIED_NAME),
        ("FROM main.events SELECT count(*)", rule::QUALIFIED_NAME),
        // CTEs that shadow or reach the base tables.
        ("WITH events AS (SELECT * FROM main.events) SELECT * FROM events", rule::QUALIFIED_NAME),
        ("WITH x AS (SELECT * FROM events) SELECT * FROM x UNION ALL SELECT * FROM main.events", rule::QUALIFIED_NAME),
        ("WITH main AS (SELECT 1) SELECT * FROM main.events", rule::QUALIFIED_NAME),
        ("WITH events AS (SELECT * FROM events WHERE false) SELECT * FROM events", CONFINED),
        ("WITH metric_records AS (SELECT * FROM events) SELECT * FROM metric_records", CONFINED),
        ("WITH tenants AS (SELECT 1) SELECT * FROM tenants, events", CONFINED),
        ("WITH a AS (SELECT * FROM b), b AS (SELECT * FROM events) SELECT * FROM a", rule::UNKNOWN_TABLE),
        ("WITH a AS (SELECT * FROM a) SELECT * FROM a", rule::UNKNOWN_TABLE),
        ("WITH events AS (SELECT * FROM events) SELECT * FROM events e JOIN events f USING (event_id)", CONFINED),
        ("SELECT * FROM (WITH y AS (SELECT 1) SELECT * FROM y) t, y", rule::UNKNOWN_TABLE),
        ("WITH x AS (SELECT 1) SELECT * FROM (WITH y AS (SELECT * FROM x) SELECT * FROM y)", CONFINED),
        ("WITH a AS (SELECT 1), a AS (SELECT 2) SELECT * FROM a", rule::SYNTAX_NOT_ALLOWED),
        ("WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT * FROM r", rule::SYNTAX_NOT_ALLOWED),
        ("WITH __sl_events AS (SELECT * FROM main.events) SELECT * FROM __sl_events", rule::RESERVED_NAME),
        ("SELECT * FROM __sl_events", rule::RESERVED_NAME),
        ("SELECT * FROM __SL_EVENTS", rule::RESERVED_NAME),
        ("SELECT * FROM \"__sl_metric_records\"", rule::RESERVED_NAME),
        ("SELECT * FROM events AS __sl_cte_0", rule::RESERVED_NAME),
        // Table functions and file reads.
        ("SELECT * FROM read_csv('/etc/passwd')", rule::TABLE_FUNCTION),
        ("SELECT * FROM read_csv_auto('data.csv')", rule::TABLE_FUNCTION),
        ("SELECT * FROM read_parquet('s3://bucket/x.parquet')", rule::TABLE_FUNCTION),
        ("SELECT * FROM read_json('x.json')", rule::TABLE_FUNCTION),
        ("SELECT * FROM read_text('/etc/hostname')", rule::TABLE_FUNCTION),
        ("SELECT * FROM read_blob('/etc/hostname')", rule::TABLE_FUNCTION),
        ("SELECT * FROM glob('/*')", rule::TABLE_FUNCTION),
        ("SELECT * FROM duckdb_tables()", rule::TABLE_FUNCTION),
        ("SELECT * FROM duckdb_settings()", rule::TABLE_FUNCTION),
        ("SELECT * FROM duckdb_extensions()", rule::TABLE_FUNCTION),
        ("SELECT * FROM pragma_version()", rule::TABLE_FUNCTION),
        ("SELECT * FROM range(10)", rule::TABLE_FUNCTION),
        ("SELECT * FROM query('SELECT * FROM main.events')", rule::TABLE_FUNCTION),
        ("SELECT * FROM query_table('events')", rule::TABLE_FUNCTION),
        ("SELECT * FROM sqlite_scan('x.db', 'users')", rule::TABLE_FUNCTION),
        ("SELECT * FROM events, read_csv('x')", rule::TABLE_FUNCTION),
        ("SELECT * FROM events, LATERAL read_csv('x')", rule::TABLE_FUNCTION),
        ("SELECT * FROM events JOIN LATERAL duckdb_tables() ON true", rule::TABLE_FUNCTION),
        ("SELECT * FROM events NATURAL JOIN read_parquet('x')", rule::TABLE_FUNCTION),
        ("SELECT * FROM events, LATERAL (SELECT * FROM read_csv('x'))", rule::TABLE_FUNCTION),
        ("SELECT * FROM events e, unnest([1, 2])", rule::TABLE_FUNCTION),
        ("SELECT * FROM 'data.csv'", rule::TABLE_FUNCTION),
        ("SELECT * FROM 'events'", rule::TABLE_FUNCTION),
        ("FROM duckdb_settings()", rule::TABLE_FUNCTION),
        ("WITH f AS (SELECT * FROM read_text('x')) SELECT * FROM f", rule::TABLE_FUNCTION),
        // Catalog tables.
        ("SELECT * FROM information_schema.tables", rule::QUALIFIED_NAME),
        ("SELECT * FROM information_schema.columns", rule::QUALIFIED_NAME),
        ("SELECT * FROM pg_catalog.pg_class", rule::QUALIFIED_NAME),
        ("SELECT * FROM memory.main.events", rule::QUALIFIED_NAME),
        ("SELECT * FROM sightline.main.events", rule::QUALIFIED_NAME),
        ("SELECT * FROM system.main.duckdb_tables", rule::QUALIFIED_NAME),
        ("SELECT * FROM events.events", rule::QUALIFIED_NAME),
        ("SELECT * FROM sqlite_master", rule::UNKNOWN_TABLE),
        ("SELECT * FROM duckdb_tables", rule::UNKNOWN_TABLE),
        ("SELECT * FROM duckdb_settings", rule::UNKNOWN_TABLE),
        ("SELECT * FROM pg_class", rule::UNKNOWN_TABLE),
        ("SELECT * FROM pg_tables", rule::UNKNOWN_TABLE),
        ("SELECT * FROM sightline_schema", rule::UNKNOWN_TABLE),
        ("SELECT * FROM property_columns", rule::UNKNOWN_TABLE),
        ("SELECT * FROM tenants", rule::UNKNOWN_TABLE),
        // Comments and quoting tricks.
        ("SELECT * FROM \"events\"", CONFINED),
        ("SELECT * FROM \"EvEnTs\" WHERE \"events\".user_id = 'u1'", CONFINED),
        ("select * from EVENTS", CONFINED),
        ("SELECT * FROM ev/**/ents", rule::UNKNOWN_TABLE),
        ("SELECT * FROM \"main\".\"events\"", rule::QUALIFIED_NAME),
        ("SELECT * FROM \"main.events\"", rule::UNKNOWN_TABLE),
        ("SELECT * FROM \"events \"", rule::UNKNOWN_TABLE),
        ("SELECT * FROM `events`", rule::SYNTAX_NOT_ALLOWED),
        ("SELECT * FROM `main`.`events`", rule::SYNTAX_NOT_ALLOWED),
        ("SELECT * FROM \u{0435}vents", rule::UNKNOWN_TABLE),
        ("SELECT * FROM \"\u{0435}vents\"", rule::UNKNOWN_TABLE),
        ("SELECT * FROM \"\u{ff45}vents\"", rule::UNKNOWN_TABLE),
        ("SELECT * FROM \"events\u{200b}\"", rule::UNKNOWN_TABLE),
        ("SELECT * FROM events -- ; DROP TABLE events", CONFINED),
        ("SELECT * FROM events /* ; DROP TABLE events */", CONFINED),
        ("SELECT 1 /* nested /* */ ; DROP TABLE events */", CONFINED),
        ("SELECT/**/*/**/FROM/**/main.events", rule::QUALIFIED_NAME),
        ("SELECT * FROM events WHERE event_name = 'a'' UNION SELECT * FROM main.events --'", CONFINED),
        ("SELECT * FROM events WHERE event_name = 'a\\' UNION SELECT * FROM main.events", rule::QUALIFIED_NAME),
        ("SELECT 1 AS \"a\"\" FROM main.events --\"", CONFINED),
        ("SELECT E'\\x27 UNION SELECT * FROM main.events'", rule::PARSE_ERROR),
        ("SELECT $$ FROM main.events $$", rule::SYNTAX_NOT_ALLOWED),
        ("SELECT x'41'", rule::SYNTAX_NOT_ALLOWED),
        ("SELECT N'x'", rule::SYNTAX_NOT_ALLOWED),
        // Several statements.
        ("SELECT 1; DROP TABLE events", rule::ONE_STATEMENT),
        ("SELECT 1; SELECT 2", rule::ONE_STATEMENT),
        ("SELECT * FROM events; /* */ DELETE FROM events", rule::ONE_STATEMENT),
        ("SELECT 1 /* ; */ ; ATTACH 'x.db'", rule::ONE_STATEMENT),
        ("SELECT 1;", CONFINED),
        ("", rule::ONE_STATEMENT),
        (";", rule::ONE_STATEMENT),
        ("-- only a comment", rule::ONE_STATEMENT),
        // Statements other than a query.
        ("PRAGMA database_list", rule::SELECT_ONLY),
        ("PRAGMA enable_profiling", rule::SELECT_ONLY),
        ("SET enable_external_access = true", rule::SELECT_ONLY),
        ("SET search_path = 'information_schema'", rule::SELECT_ONLY),
        ("RESET ALL", rule::SELECT_ONLY),
        ("ATTACH 'other.db' AS other", rule::SELECT_ONLY),
        ("DETACH other", rule::SELECT_ONLY),
        ("COPY events TO '/tmp/x.csv'", rule::SELECT_ONLY),
        ("COPY (SELECT * FROM main.events) TO '/tmp/x.csv'", rule::SELECT_ONLY),
        ("INSTALL httpfs", rule::SELECT_ONLY),
        ("LOAD httpfs", rule::SELECT_ONLY),
        ("EXPORT DATABASE '/tmp/x'", rule::SELECT_ONLY),
        ("IMPORT DATABASE '/tmp/x'", rule::SELECT_ONLY),
        ("CALL duckdb_settings()", rule::SELECT_ONLY),
        ("CREATE TABLE x AS SELECT * FROM events", rule::SELECT_ONLY),
        ("CREATE MACRO m() AS TABLE SELECT * FROM main.events", rule::SELECT_ONLY),
        ("CREATE SECRET s (TYPE s3)", rule::SELECT_ONLY),
        ("INSERT INTO events VALUES ('x')", rule::SELECT_ONLY),
        ("UPDATE events SET user_id = 'x'", rule::SELECT_ONLY),
        ("DELETE FROM events", rule::SELECT_ONLY),
        ("DROP TABLE events", rule::SELECT_ONLY),
        ("ALTER TABLE events ADD COLUMN x INT", rule::SELECT_ONLY),
        ("CHECKPOINT", rule::SELECT_ONLY),
        ("VACUUM", rule::SELECT_ONLY),
        ("DESCRIBE events", rule::SELECT_ONLY),
        ("SHOW TABLES", rule::SELECT_ONLY),
        ("SUMMARIZE events", rule::SELECT_ONLY),
        ("EXPLAIN SELECT * FROM main.events", rule::SELECT_ONLY),
        ("PIVOT events ON event_name", rule::SELECT_ONLY),
        ("USE other", rule::SELECT_ONLY),
        ("BEGIN", rule::SELECT_ONLY),
        ("TABLE events", rule::SELECT_ONLY),
        ("\"SELECT\" 1", rule::SELECT_ONLY),
        ("SELECT * INTO stolen FROM events", rule::SELECT_ONLY),
        ("WITH x AS (SELECT 1) INSERT INTO events SELECT * FROM x", rule::SELECT_ONLY),
        // Functions that read the environment, settings, files or the catalog.
        ("SELECT getenv('HOME')", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT current_setting('access_mode')", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT version()", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT read_text('/etc/passwd')", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT * FROM events WHERE user_id = getvariable('x')", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT current_database()", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT current_catalog", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT current_user, user", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT current_schema", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT duckdb_extensions()", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT pragma_version()", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT nextval('s')", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT repeat('x', 1000000000)", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT 'HOME'.getenv()", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT event_name.getenv() FROM events", rule::QUALIFIED_NAME),
        ("SELECT main.lower('x')", rule::QUALIFIED_NAME),
        ("SELECT \"getenv\"('HOME')", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT GETENV('HOME')", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT list_transform([1], x -> getenv('HOME'))", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT * REPLACE (getenv('HOME') AS event_name) FROM events", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT count(*) FILTER (WHERE getenv('X') = '1') FROM events", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT COLUMNS('.*') FROM events", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT * FROM events WHERE user_id IN (SELECT current_setting('threads'))", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT struct_pack(a := getenv('HOME'))", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT {'a': getenv('HOME')}.a", rule::FUNCTION_NOT_ALLOWED),
        ("SELECT [getenv('HOME')][1]", rule::FUNCTION_NOT_ALLOWED),
        // Struct, list and row tricks that stay inside the tenant's views.
        ("SELECT events FROM events", CONFINED),
        ("SELECT (events).user_id FROM events", CONFINED),
        ("SELECT * FROM events AS main", CONFINED),
        ("SELECT main.user_id FROM events AS main", CONFINED),
        ("SELECT main.events.user_id FROM events", CONFINED),
        ("SELECT * FROM events WHERE tenant_id = 'other'", CONFINED),
        ("SELECT {'t': events.properties}.t ->> 'x', [events.user_id][1] FROM events", CONFINED),
        ("SELECT * FROM (SELECT * FROM events) AS metric_records", CONFINED),
        ("SELECT * FROM events e1 JOIN events e2 ON e1.user_id = e2.user_id", CONFINED),
        (
            "SELECT * FROM events ASOF JOIN sessions s ON events.user_id = s.user_id AND events.timestamp >= s.started_at",
            rule::PARSE_ERROR,
        ),
        (
            "SELECT * FROM events ASOF JOIN main.events m MATCH_CONDITION (events.timestamp >= m.ts) ON true",
            rule::QUALIFIED_NAME,
        ),
        (
            "SELECT * FROM events ASOF JOIN sessions s MATCH_CONDITION (events.timestamp >= s.started_at) ON true",
            rule::SYNTAX_NOT_ALLOWED,
        ),
        ("SELECT * FROM events SEMI JOIN users USING (user_id)", CONFINED),
        // Other syntax outside the subset.
        ("SELECT * FROM events FOR UPDATE", rule::SYNTAX_NOT_ALLOWED),
        ("SELECT * FROM events PIVOT (count(*) FOR event_name IN ('a'))", rule::SYNTAX_NOT_ALLOWED),
        ("SELECT * FROM events WHERE user_id IN (TABLE users)", rule::SYNTAX_NOT_ALLOWED),
        // Placeholders (these cases pass no parameters).
        ("SELECT * FROM events WHERE user_id = ?", rule::PARAMETERS),
        ("SELECT * FROM events WHERE user_id = $1", rule::PARAMETERS),
        ("SELECT * FROM events WHERE user_id = $name", rule::PARAMETERS),
        ("SELECT * FROM events WHERE user_id = :name", rule::PARAMETERS),
        ("SELECT * FROM events WHERE user_id = ?1", rule::PARAMETERS),
        ("SELECT * FROM events WHERE user_id = '?'", CONFINED),
        // Unparseable.
        ("SELECT * FROM events WHERE", rule::PARSE_ERROR),
        ("SELECT 'unterminated", rule::PARSE_ERROR),
    ];

    /// Table names (as name parts) of every table factor in `debug`, the `{:?}` of a parsed
    /// statement: the Debug form shows every node, so this does not depend on the walker.
    fn table_names(debug: &str) -> Vec<Vec<String>> {
        names_after(debug, "Table { name: ObjectName([")
    }

    fn function_names(debug: &str) -> Vec<String> {
        names_after(debug, "Function(Function { name: ObjectName([")
            .into_iter()
            .map(|parts| parts.join(".").to_ascii_lowercase())
            .collect()
    }

    fn names_after(debug: &str, marker: &str) -> Vec<Vec<String>> {
        let mut found = Vec::new();
        let mut rest = debug;
        while let Some(i) = rest.find(marker) {
            rest = &rest[i + marker.len()..];
            let end = rest.find("])").expect("an ObjectName ends");
            let parts = rest[..end].split("value: \"").skip(1).map(|p| p[..p.find('"').unwrap()].to_owned()).collect();
            found.push(parts);
            rest = &rest[end..];
        }
        found
    }

    /// Asserts that `out` reads only the tenant's rows: it parses back as one query; every
    /// table it scans is a `__sl_` CTE or a base table filtered on the tenant right where it
    /// is scanned; it calls no table function and only allow-listed functions.
    fn assert_confined(sql: &str, out: &Sandboxed) {
        let statements = Parser::new(&DuckDbDialect {})
            .parse_sql_with_recursion_limit(&out.sql)
            .unwrap_or_else(|e| panic!("{sql:?}: the rewritten SQL does not parse again: {e}\n{}", out.sql));
        assert_eq!(statements.len(), 1, "{sql:?}: {}", out.sql);
        assert!(matches!(statements[0], Statement::Query(_)), "{sql:?}: {}", out.sql);
        let debug = format!("{:?}", statements[0]);
        let mut base_scans = 0;
        for parts in table_names(&debug) {
            match parts.as_slice() {
                [name] => assert!(name.starts_with(RESERVED_PREFIX), "{sql:?} scans {name}: {}", out.sql),
                [schema, table] if schema == "main" && (table == "events" || table == "metric_records") => {
                    base_scans += 1
                }
                other => panic!("{sql:?} scans {other:?}: {}", out.sql),
            }
        }
        let filtered = ["events", "metric_records"]
            .iter()
            .map(|t| out.sql.matches(&format!("FROM main.{t} WHERE tenant_id = '{TENANT}'")).count())
            .sum::<usize>();
        assert_eq!(base_scans, filtered, "{sql:?}: a base-table scan without the tenant filter: {}", out.sql);
        for marker in ["args: Some(TableFunctionArgs", "Function { lateral:", "TableFunction {", "UNNEST {"] {
            assert!(!debug.contains(marker), "{sql:?}: a table function: {}", out.sql);
        }
        for f in function_names(&debug) {
            assert!(FUNCTIONS.contains(&f.as_str()), "{sql:?} calls {f}: {}", out.sql);
        }
        let tokens = Tokenizer::new(&DuckDbDialect {}, &out.sql).tokenize().unwrap();
        assert!(!tokens.contains(&Token::Placeholder("?".into())), "{sql:?}: a ? is left: {}", out.sql);
    }

    trait ParseWithLimit {
        fn parse_sql_with_recursion_limit(self, sql: &str) -> Result<Vec<Statement>, ParserError>;
    }

    impl ParseWithLimit for Parser<'_> {
        fn parse_sql_with_recursion_limit(self, sql: &str) -> Result<Vec<Statement>, ParserError> {
            self.with_recursion_limit(PARSER_RECURSION_LIMIT).try_with_sql(sql)?.parse_statements()
        }
    }

    fn check(sql: &str, params: usize, expected: &str) -> Option<String> {
        match (sandbox(sql, &tenant(), params), expected) {
            (Ok(out), CONFINED) => {
                assert_confined(sql, &out);
                None
            }
            (Ok(out), _) => Some(format!("{sql:?}: expected {expected}, allowed as {}", out.sql)),
            (Err(r), _) if r.rule == expected => {
                assert!(!r.detail.is_empty(), "{sql:?}: a refusal without detail");
                None
            }
            (Err(r), _) => Some(format!("{sql:?}: expected {expected}, refused {r}")),
        }
    }

    #[test]
    fn hostile_inputs_are_refused_or_confined() {
        assert!(HOSTILE.len() >= 100, "{} hostile cases", HOSTILE.len());
        for (_, expected) in HOSTILE {
            assert!(*expected == CONFINED || rule::ALL.contains(expected), "unknown rule {expected}");
        }
        let failures: Vec<String> = HOSTILE.iter().filter_map(|(sql, expected)| check(sql, 0, expected)).collect();
        assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), HOSTILE.len(), failures.join("\n"));
    }

    /// Runs `f` on a thread with the 2 MiB stack Rust gives a spawned thread by default; a
    /// stack overflow aborts the whole test binary, so passing proves the bound.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new().stack_size(2 << 20).spawn(f).unwrap().join().unwrap()
    }

    fn rule_of(sql: &str) -> &'static str {
        match sandbox(sql, &tenant(), 0) {
            Ok(_) => CONFINED,
            Err(r) => r.rule,
        }
    }

    #[test]
    fn long_and_deep_inputs_are_refused_on_a_small_stack() {
        let results = on_small_stack(|| {
            let cases: Vec<(String, &str)> = vec![
                (format!("SELECT 1{}", " ".repeat(MAX_SQL_CHARS)), rule::TOO_LONG),
                (format!("SELECT '{}'", "é".repeat(MAX_SQL_CHARS)), rule::TOO_LONG),
                (format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000)), rule::TOO_LONG),
                (format!("SELECT {}1{}", "(".repeat(9_990), ")".repeat(5)), rule::TOO_DEEP),
                (format!("SELECT {}1{}", "(".repeat(MAX_NESTING + 1), ")".repeat(MAX_NESTING + 1)), rule::TOO_DEEP),
                (format!("SELECT {}1{}", "[".repeat(5_000), "]".repeat(5_000)), rule::TOO_DEEP),
                (format!("SELECT {}1{}", "{'a': ".repeat(2_000), "}".repeat(2_000)), rule::TOO_DEEP),
                (
                    format!("SELECT * FROM {}events{}", "(SELECT * FROM ".repeat(1_000), ")".repeat(1_000)),
                    rule::TOO_DEEP,
                ),
                // sqlparser reports the recursion limit inside NOT and CASE as a syntax error.
                (format!("SELECT {}1", "NOT ".repeat(4_000)), rule::PARSE_ERROR),
                (format!("SELECT {}1", "- ".repeat(9_000)), rule::TOO_DEEP),
                (format!("SELECT {}1{}", "CASE WHEN true THEN ".repeat(800), " END".repeat(800)), rule::PARSE_ERROR),
                (format!("SELECT list_transform([1], {}1)", "x -> ".repeat(3_000)), rule::TOO_DEEP),
                (format!("SELECT 1{}", " + 1".repeat(4_900)), rule::TOO_DEEP),
                (format!("SELECT * FROM events WHERE {}true", "user_id = 'u' AND ".repeat(1_000)), rule::TOO_DEEP),
                (format!("SELECT 1{}", " UNION ALL SELECT 1".repeat(900)), rule::TOO_DEEP),
                (format!("SELECT 1 /*{} */", " /* ".repeat(2_000) + &" */".repeat(2_000)), CONFINED),
                (format!("SELECT 1{}", ";".repeat(5_000)), CONFINED),
            ];
            cases
                .into_iter()
                .map(|(sql, expected)| (sql.chars().take(40).collect::<String>(), rule_of(&sql), expected))
                .collect::<Vec<_>>()
        });
        for (start, got, expected) in results {
            assert_eq!(got, expected, "{start}...");
        }
    }

    /// For each kind of nesting, finds the deepest query the sandbox accepts and sandboxes it
    /// on a small stack: every limit must bite (as `too_deep`) before the stack runs out,
    /// and leave room for real queries.
    #[test]
    fn the_deepest_accepted_queries_fit_a_small_stack() {
        type Make = fn(usize) -> String;
        let kinds: [(&str, Make, usize); 10] = [
            ("parentheses", |n| format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n)), MAX_NESTING),
            (
                "FROM subqueries",
                |n| format!("SELECT * FROM {}events{}", "(SELECT * FROM ".repeat(n), ")".repeat(n)),
                20,
            ),
            ("scalar subqueries", |n| format!("SELECT {}1{}", "(SELECT ".repeat(n), ")".repeat(n)), 20),
            (
                "IN subqueries",
                |n| {
                    format!(
                        "SELECT 1 FROM events WHERE {}true{}",
                        "user_id IN (SELECT user_id FROM events WHERE ".repeat(n),
                        ")".repeat(n)
                    )
                },
                16,
            ),
            (
                "nested WITH",
                |n| format!("{}SELECT 1{}", "SELECT * FROM (WITH a AS (".repeat(n), ") SELECT * FROM a)".repeat(n)),
                10,
            ),
            ("function calls", |n| format!("SELECT {}1{}", "abs(".repeat(n), ")".repeat(n)), MAX_NESTING),
            (
                "nested joins",
                |n| format!("SELECT * FROM {}events{}", "(events JOIN ".repeat(n), " ON true)".repeat(n)),
                16,
            ),
            ("operator chains", |n| format!("SELECT 1{}", " + 1".repeat(n)), 200),
            ("set operations", |n| format!("SELECT 1{}", " UNION ALL SELECT 1".repeat(n)), 100),
            ("NOT chains", |n| format!("SELECT {}true", "NOT ".repeat(n)), 40),
        ];
        let found = on_small_stack(move || {
            kinds.map(|(kind, make, floor)| {
                let deepest = (1..400).take_while(|n| sandbox(&make(*n), &tenant(), 0).is_ok()).last().unwrap_or(0);
                let accepted = sandbox(&make(deepest), &tenant(), 0);
                let refused = sandbox(&make(deepest + 1), &tenant(), 0);
                (kind, floor, deepest, accepted.map(|out| out.sql), refused.map_err(|r| r.rule))
            })
        });
        for (kind, floor, deepest, accepted, refused) in found {
            assert!(deepest >= floor, "{kind}: only {deepest} levels are accepted, want {floor}");
            assert!(accepted.is_ok(), "{kind}");
            assert!(
                matches!(refused, Err(rule::TOO_DEEP | rule::PARSE_ERROR)),
                "{kind}: {} levels: {refused:?}",
                deepest + 1
            );
        }
    }

    #[test]
    fn accepted_nesting_is_deep_enough_for_real_queries() {
        let n = 12;
        for sql in [
            format!("SELECT {}1{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING)),
            format!("SELECT * FROM {}events{}", "(SELECT * FROM ".repeat(n), ")".repeat(n)),
            format!("SELECT {}1{}", "(SELECT ".repeat(n), ")".repeat(n)),
            format!("SELECT * FROM events WHERE {}true", "user_id = 'u' AND ".repeat(200)),
        ] {
            let out = sandbox(&sql, &tenant(), 0).unwrap_or_else(|r| panic!("{r}: {sql}"));
            assert_confined(&sql, &out);
        }
    }

    #[test]
    fn seed_004_example_rewrites_to_the_tenants_conversations() {
        let sql =
            "SELECT COUNT(*) as total, AVG(duration) as avg_duration FROM conversations WHERE bot_id = ? AND date >= ?";
        let out = sandbox(sql, &tenant(), 2).unwrap();
        assert_eq!(out.placeholders, 2);
        assert_confined(sql, &out);
        assert!(out.sql.starts_with("WITH __sl_conversations AS ("), "{}", out.sql);
        assert!(out.sql.contains("FROM main.events WHERE tenant_id = 'acme')"), "{}", out.sql);
        assert!(
            out.sql.ends_with(
                "SELECT COUNT(*) AS total, AVG(duration) AS avg_duration FROM __sl_conversations AS conversations \
             WHERE bot_id = $1 AND date >= $2"
            ),
            "{}",
            out.sql
        );
        for column in ["AS duration,", "AS date,", "AS bot_id,"] {
            assert!(out.sql.contains(column), "{column}: {}", out.sql);
        }
        // Only the view it reads is defined.
        assert!(!out.sql.contains("__sl_events"), "{}", out.sql);
    }

    #[test]
    fn a_join_of_events_and_sessions_keeps_the_names_it_uses() {
        let sql =
            "SELECT events.user_id, s.duration_seconds FROM events JOIN sessions s ON events.session_id = s.session_id";
        let out = sandbox(sql, &tenant(), 0).unwrap();
        assert_confined(sql, &out);
        assert!(out.sql.ends_with(
            "SELECT events.user_id, s.duration_seconds FROM __sl_events AS events JOIN __sl_sessions s ON events.session_id = s.session_id"
        ), "{}", out.sql);
        let defined: Vec<&str> =
            DEFINITIONS.iter().map(|d| d.name).filter(|n| out.sql.contains(&format!("{n} AS"))).collect();
        assert_eq!(defined, ["__sl_events", "__sl_sessionized", "__sl_sessions"]);
    }

    #[test]
    fn a_cte_over_events_is_renamed_and_keeps_its_name_as_alias() {
        let sql = "WITH daily AS (SELECT date_trunc('day', timestamp) AS day, count(*) AS n FROM events GROUP BY 1) \
                   SELECT daily.day, d2.n FROM daily JOIN daily d2 USING (day) ORDER BY daily.day";
        let out = sandbox(sql, &tenant(), 0).unwrap();
        assert_confined(sql, &out);
        assert!(out.sql.contains(
            ", __sl_cte_0 AS (SELECT date_trunc('day', timestamp) AS day, count(*) AS n FROM __sl_events AS events GROUP BY 1) "
        ), "{}", out.sql);
        assert!(
            out.sql.ends_with(
                "SELECT daily.day, d2.n FROM __sl_cte_0 AS daily JOIN __sl_cte_0 d2 USING(day) ORDER BY daily.day"
            ),
            "{}",
            out.sql
        );
    }

    #[test]
    fn a_cte_that_shadows_a_view_reads_the_view_inside_and_itself_after() {
        let sql = "WITH events AS (SELECT * FROM events WHERE event_name = 'login') SELECT count(*) FROM events";
        let out = sandbox(sql, &tenant(), 0).unwrap();
        assert_confined(sql, &out);
        assert!(out.sql.contains("__sl_cte_0 AS (SELECT * FROM __sl_events AS events WHERE"), "{}", out.sql);
        assert!(out.sql.ends_with("SELECT count(*) FROM __sl_cte_0 AS events"), "{}", out.sql);
    }

    #[test]
    fn a_union_of_two_views_reads_both_for_the_tenant() {
        let sql = "SELECT user_id, 'event' AS source FROM events UNION ALL SELECT user_id, 'message' FROM messages";
        let out = sandbox(sql, &tenant(), 0).unwrap();
        assert_confined(sql, &out);
        assert!(out.sql.contains("FROM __sl_events AS events UNION ALL SELECT"), "{}", out.sql);
        assert!(out.sql.ends_with("FROM __sl_messages AS messages"), "{}", out.sql);
        assert_eq!(out.sql.matches(&format!("tenant_id = '{TENANT}'")).count(), 2, "{}", out.sql);
    }

    #[test]
    fn window_functions_and_the_rest_of_the_subset_are_accepted() {
        for sql in [
            "SELECT user_id, timestamp, lag(timestamp) OVER (PARTITION BY user_id ORDER BY timestamp) AS prev, \
             row_number() OVER w AS n, sum(1) OVER (w ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM events \
             WINDOW w AS (PARTITION BY user_id ORDER BY timestamp) QUALIFY n <= 10 ORDER BY user_id, n",
            "SELECT date_trunc('week', started_at) AS week, count(*), avg(duration_seconds), \
             quantile_cont(duration_seconds, 0.9), median(events) FROM sessions GROUP BY ALL ORDER BY ALL",
            "SELECT u.user_id, u.sessions, count(m.event_id) FROM users u LEFT JOIN messages m ON m.user_id = u.user_id \
             WHERE u.first_seen >= now() - INTERVAL 30 DAY GROUP BY u.user_id, u.sessions HAVING count(*) > 1 LIMIT 10 OFFSET 5",
            "SELECT metric_name, date, sum(value) FILTER (WHERE value > 0) FROM metric_records \
             WHERE dimensions ->> 'region' = 'eu' AND metric_type IN ('revenue', 'cost') GROUP BY GROUPING SETS ((metric_name), (metric_name, date))",
            "SELECT properties ->> 'page' AS page, properties -> 'ref', json_extract_string(properties, '$.a'), \
             CAST(properties ->> 'amount' AS DOUBLE), TRY_CAST(properties ->> 'n' AS INT), timestamp::DATE, \
             coalesce(user_id, 'anon'), CASE WHEN event_name LIKE 'page%' THEN 1 ELSE 0 END, \
             EXTRACT(hour FROM timestamp), strftime(timestamp, '%Y'), lower(event_name) ILIKE 'x%' \
             FROM events WHERE timestamp BETWEEN TIMESTAMP '2024-01-01 00:00:00' AND current_timestamp AND user_id IS NOT NULL",
            "SELECT * FROM conversations c WHERE EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.conversation_id AND m.role = 'assistant')",
            "SELECT string_agg(DISTINCT event_name, ',' ORDER BY event_name), list(event_name), count(DISTINCT user_id) FROM events",
            "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS t(n, s) JOIN events ON true LIMIT 1",
            "FROM events SELECT event_name, count(*) GROUP BY event_name",
            "FROM sessions",
            "SELECT DISTINCT ON (user_id) user_id, timestamp FROM events ORDER BY user_id, timestamp DESC",
            "SELECT * EXCLUDE (context) FROM events",
            "SELECT list_filter(list(event_name), x -> x <> 'login') FROM events",
            "SELECT e.*, s.* FROM events e, LATERAL (SELECT count(*) FROM sessions WHERE sessions.user_id = e.user_id) s",
            "SELECT * FROM events e ANTI JOIN users u USING (user_id)",
            "(SELECT user_id FROM users) INTERSECT (SELECT user_id FROM sessions) ORDER BY 1",
            "SELECT 1",
        ] {
            let out = sandbox(sql, &tenant(), 0).unwrap_or_else(|r| panic!("{sql}: {r}"));
            assert_confined(sql, &out);
        }
    }

    #[test]
    fn placeholders_are_numbered_in_text_order() {
        // sqlparser renders LIMIT before OFFSET; the numbers follow the text, not the rendering.
        let sql = "FROM events SELECT event_name WHERE user_id = ? OFFSET ? LIMIT ?";
        let out = sandbox(sql, &tenant(), 3).unwrap();
        assert_eq!(out.placeholders, 3);
        assert!(out.sql.ends_with("WHERE user_id = $1 LIMIT $3 OFFSET $2"), "{}", out.sql);
        assert_confined(sql, &out);

        let sql = "WITH x AS (SELECT * FROM events WHERE event_name = ?) SELECT * FROM x WHERE user_id = ? AND ? < 3";
        let out = sandbox(sql, &tenant(), 3).unwrap();
        assert!(out.sql.contains("event_name = $1)"), "{}", out.sql);
        assert!(out.sql.ends_with("WHERE user_id = $2 AND $3 < 3"), "{}", out.sql);
    }

    #[test]
    fn a_placeholder_count_that_differs_from_the_parameters_is_refused() {
        let sql = "SELECT * FROM events WHERE user_id = ? AND event_name = ?";
        for params in [0, 1, 3] {
            let r = sandbox(sql, &tenant(), params).unwrap_err();
            assert_eq!(r.rule, rule::PARAMETERS);
            assert!(
                r.detail.contains("2 `?` placeholder(s)") && r.detail.contains(&format!("{params} parameter")),
                "{r}"
            );
        }
        assert!(sandbox(sql, &tenant(), 2).is_ok());
        assert_eq!(sandbox("SELECT 1", &tenant(), 1).unwrap_err().rule, rule::PARAMETERS);
    }

    #[test]
    fn refusals_name_what_they_found() {
        for (sql, rule, needle) in [
            ("SELECT * FROM main.events", rule::QUALIFIED_NAME, "main.events"),
            ("SELECT * FROM secrets", rule::UNKNOWN_TABLE, "secrets"),
            ("SELECT getenv('HOME')", rule::FUNCTION_NOT_ALLOWED, "getenv"),
            ("SELECT * FROM read_csv('x')", rule::TABLE_FUNCTION, "read_csv"),
            ("ATTACH 'x.db'", rule::SELECT_ONLY, "ATTACH"),
            ("SELECT 1; SELECT 2", rule::ONE_STATEMENT, "2 statements"),
            ("SELECT $1", rule::PARAMETERS, "$1"),
            ("SELECT * FROM `events`", rule::SYNTAX_NOT_ALLOWED, "`"),
        ] {
            let r = sandbox(sql, &tenant(), 0).unwrap_err();
            assert_eq!(r.rule, rule, "{sql}: {r}");
            assert!(r.detail.contains(needle), "{sql}: {r}");
        }
    }

    #[test]
    fn the_tenant_is_the_one_given() {
        let other = TenantId::parse("t-2.b_c").unwrap();
        let out = sandbox("SELECT count(*) FROM events, metric_records", &other, 0).unwrap();
        assert_eq!(out.sql.matches("tenant_id = 't-2.b_c'").count(), 2, "{}", out.sql);
        assert!(!out.sql.contains(TENANT));
    }

    #[test]
    fn every_view_definition_filters_each_base_table_scan_on_the_tenant() {
        for view in VIEWS {
            let sql = format!("SELECT * FROM {view}");
            let out = sandbox(&sql, &tenant(), 0).unwrap();
            assert_confined(&sql, &out);
            assert!(out.sql.ends_with(&format!("SELECT * FROM __sl_{view} AS {view}")), "{}", out.sql);
        }
        for d in DEFINITIONS {
            let scans = d.body.matches("FROM main.").count();
            assert!(scans >= 1 || d.body.contains("FROM __sl_"), "{}", d.name);
            assert_eq!(
                scans,
                d.body.matches("FROM main.events WHERE tenant_id = '{tenant}'").count()
                    + d.body.matches("FROM main.metric_records WHERE tenant_id = '{tenant}'").count(),
                "{}",
                d.name
            );
            assert!(!d.body.contains("tenant_id,") && !d.body.contains(", tenant_id"), "{} exposes tenant_id", d.name);
        }
    }

    #[test]
    fn the_function_list_is_sorted_and_holds_what_the_docs_promise() {
        assert!(FUNCTIONS.windows(2).all(|w| w[0] < w[1]), "FUNCTIONS must be sorted and unique");
        for f in [
            "count",
            "sum",
            "avg",
            "min",
            "max",
            "median",
            "quantile_cont",
            "quantile_disc",
            "approx_count_distinct",
            "stddev",
            "variance",
            "first",
            "last",
            "arg_min",
            "arg_max",
            "string_agg",
            "list",
            "bool_and",
            "bool_or",
            "row_number",
            "rank",
            "dense_rank",
            "lag",
            "lead",
            "ntile",
            "first_value",
            "last_value",
            "percent_rank",
            "cume_dist",
            "date_trunc",
            "date_part",
            "epoch",
            "epoch_ms",
            "strftime",
            "strptime",
            "to_timestamp",
            "make_date",
            "date_diff",
            "date_add",
            "age",
            "now",
            "current_date",
            "current_timestamp",
            "lower",
            "upper",
            "length",
            "substring",
            "substr",
            "trim",
            "ltrim",
            "rtrim",
            "replace",
            "concat",
            "concat_ws",
            "split_part",
            "starts_with",
            "ends_with",
            "contains",
            "regexp_matches",
            "regexp_replace",
            "regexp_extract",
            "json_extract",
            "json_extract_string",
            "json_extract_path",
            "json_extract_path_text",
            "json_array_length",
            "json_keys",
            "json_type",
            "json_valid",
            "json_object",
            "json_array",
            "abs",
            "round",
            "floor",
            "ceil",
            "ceiling",
            "sqrt",
            "power",
            "pow",
            "ln",
            "log",
            "log10",
            "log2",
            "exp",
            "greatest",
            "least",
            "sign",
            "mod",
            "coalesce",
            "nullif",
            "ifnull",
            "if",
            "iff",
        ] {
            assert!(FUNCTIONS.binary_search(&f).is_ok(), "{f} is missing");
        }
        for f in [
            "getenv",
            "current_setting",
            "read_csv",
            "read_text",
            "glob",
            "duckdb_tables",
            "pragma_version",
            "version",
            "query",
            "range",
            "repeat",
        ] {
            assert!(FUNCTIONS.binary_search(&f).is_err(), "{f} must not be allowed");
        }
    }

    #[test]
    fn allowed_sql_sent_twice_gives_the_same_answer() {
        let sql = "SELECT * FROM events e JOIN users u USING (user_id) WHERE e.event_name = ?";
        assert_eq!(sandbox(sql, &tenant(), 1), sandbox(sql, &tenant(), 1));
    }
}
