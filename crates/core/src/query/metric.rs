//! Metric definitions: a name for a computation. A definition is either a *measure* (one
//! aggregation over events or metric records, with a field and filters) or a *formula*
//! over other definitions (`completed_purchases / total_conversations`, seed 004).
//!
//! A name resolves, in order, to the tenant's own definition, a built-in one, or metric
//! records of that `metric_name` (seed 000's data points). Resolution turns a name into
//! an [`Expr`] whose leaves are measures: what the compiler turns into SQL.

use super::field::{Field, PropertyPath, Source};
use super::filter::{Condition, Filter, Op, Operand, Scalar};

/// How a measure folds its rows into one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregation {
    /// Rows.
    Count,
    /// Distinct `user_id`s.
    Users,
    /// Distinct values of the field.
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
    /// The p-th percentile (1 to 99), interpolated.
    Percentile(u8),
}

impl Aggregation {
    pub const NAMES: &'static str =
        "count, unique_users, count_distinct, sum, avg, min, max, median, p50, p90, p95, p99";

    pub fn parse(s: &str) -> Option<Aggregation> {
        let s = s.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        Some(match s.as_str() {
            "count" | "total" => Aggregation::Count,
            "unique_users" | "count_distinct_users" | "users" | "dau" | "uniques" => Aggregation::Users,
            "count_distinct" | "unique" | "distinct" => Aggregation::CountDistinct,
            "sum" => Aggregation::Sum,
            "avg" | "average" | "mean" => Aggregation::Avg,
            "min" | "minimum" => Aggregation::Min,
            "max" | "maximum" => Aggregation::Max,
            "median" => Aggregation::Percentile(50),
            _ => {
                let n: u8 = s.strip_prefix('p')?.parse().ok()?;
                if !(1..=99).contains(&n) {
                    return None;
                }
                Aggregation::Percentile(n)
            }
        })
    }

    pub fn name(self) -> String {
        match self {
            Aggregation::Count => "count".into(),
            Aggregation::Users => "unique_users".into(),
            Aggregation::CountDistinct => "count_distinct".into(),
            Aggregation::Sum => "sum".into(),
            Aggregation::Avg => "avg".into(),
            Aggregation::Min => "min".into(),
            Aggregation::Max => "max".into(),
            Aggregation::Percentile(p) => format!("p{p}"),
        }
    }

    /// Aggregations of a field's values; the others count rows or users.
    pub fn needs_field(self) -> bool {
        !matches!(self, Aggregation::Count | Aggregation::Users)
    }

    /// Whether "no rows" means 0 (a count, a sum) rather than "no value" (an average).
    pub fn is_additive(self) -> bool {
        matches!(self, Aggregation::Count | Aggregation::Users | Aggregation::CountDistinct | Aggregation::Sum)
    }

    /// Whether the field must be numeric.
    pub fn needs_number(self) -> bool {
        matches!(
            self,
            Aggregation::Sum | Aggregation::Avg | Aggregation::Min | Aggregation::Max | Aggregation::Percentile(_)
        )
    }
}

/// One aggregation over one source: a leaf of every computation.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    pub source: Source,
    pub agg: Aggregation,
    /// The aggregated field; `None` for counts of rows or users.
    pub field: Option<Field>,
    pub filter: Option<Filter>,
}

impl Measure {
    pub fn new(
        source: Source,
        agg: Aggregation,
        field: Option<Field>,
        filter: Option<Filter>,
    ) -> Result<Measure, String> {
        if agg.needs_field() && field.is_none() {
            return Err(format!("aggregation '{}' needs a field", agg.name()));
        }
        if agg == Aggregation::Users && source == Source::MetricRecords {
            return Err("metric records have no users; use count or an aggregation of value".into());
        }
        if let Some(f) = &field
            && f.source() != source
        {
            return Err(format!("{f} is not a field of {}", source.stored().table()));
        }
        let field = if agg.needs_field() { field } else { None };
        Ok(Measure { source, agg, field, filter })
    }

    /// Adds a condition every row must meet.
    pub fn and(mut self, extra: Filter) -> Measure {
        self.filter = Filter::and(self.filter.take().into_iter().chain([extra]));
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

/// A resolved computation: arithmetic over measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Measure(Measure),
    Num(f64),
    Bin(BinOp, Box<Expr>, Box<Expr>),
}

impl Expr {
    /// Every measure, left to right.
    pub fn measures(&self) -> Vec<&Measure> {
        match self {
            Expr::Measure(m) => vec![m],
            Expr::Num(_) => vec![],
            Expr::Bin(_, a, b) => a.measures().into_iter().chain(b.measures()).collect(),
        }
    }

    /// Applies `f` to every measure.
    pub fn map_measures(self, f: &mut impl FnMut(Measure) -> Result<Measure, String>) -> Result<Expr, String> {
        Ok(match self {
            Expr::Measure(m) => Expr::Measure(f(m)?),
            Expr::Num(n) => Expr::Num(n),
            Expr::Bin(op, a, b) => Expr::Bin(op, Box::new(a.map_measures(f)?), Box::new(b.map_measures(f)?)),
        })
    }

    /// Whether an empty bucket of this computation is 0 (every measure additive, no
    /// division).
    pub fn is_additive(&self) -> bool {
        match self {
            Expr::Measure(m) => m.agg.is_additive(),
            Expr::Num(_) => true,
            Expr::Bin(BinOp::Div, ..) => false,
            Expr::Bin(_, a, b) => a.is_additive() && b.is_additive(),
        }
    }
}

/// A formula as written: names of other definitions, numbers, `+ - * /`, parentheses.
#[derive(Debug, Clone, PartialEq)]
pub enum Formula {
    Ref(String),
    Num(f64),
    Bin(BinOp, Box<Formula>, Box<Formula>),
}

pub const MAX_FORMULA_CHARS: usize = 1000;
const MAX_FORMULA_DEPTH: usize = 32;

impl Formula {
    pub fn refs(&self) -> Vec<&str> {
        match self {
            Formula::Ref(r) => vec![r.as_str()],
            Formula::Num(_) => vec![],
            Formula::Bin(_, a, b) => a.refs().into_iter().chain(b.refs()).collect(),
        }
    }

    /// The value when it holds no names.
    fn constant(&self) -> Option<f64> {
        match self {
            Formula::Ref(_) => None,
            Formula::Num(n) => Some(*n),
            Formula::Bin(op, a, b) => {
                let (a, b) = (a.constant()?, b.constant()?);
                Some(match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                })
            }
        }
    }

    /// Refuses a division whose divisor is a constant 0 (`x / 0`, `x / (2 - 2)`): every
    /// bucket of it would be empty.
    pub fn check_divisors(&self) -> Result<(), String> {
        if let Formula::Bin(op, a, b) = self {
            if *op == BinOp::Div && b.constant() == Some(0.0) {
                return Err("the formula divides by zero: its divisor is the constant 0".into());
            }
            a.check_divisors()?;
            b.check_divisors()?;
        }
        Ok(())
    }

    pub fn parse(text: &str) -> Result<Formula, String> {
        if text.trim().is_empty() {
            return Err("the formula is empty".into());
        }
        if text.len() > MAX_FORMULA_CHARS {
            return Err(format!("a formula has at most {MAX_FORMULA_CHARS} characters"));
        }
        let tokens = tokenize(text)?;
        let mut p = Parser { tokens, at: 0 };
        let f = p.expr(0)?;
        if let Some(t) = p.tokens.get(p.at) {
            return Err(format!("unexpected {} in the formula", t.describe()));
        }
        f.check_divisors()?;
        Ok(f)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Num(f64),
    Op(BinOp),
    Open,
    Close,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Name(n) => format!("name '{n}'"),
            Token::Num(n) => format!("number {n}"),
            Token::Op(o) => format!("'{}'", o.symbol()),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '+' | '-' | '*' | '/' => {
                out.push(Token::Op(match c {
                    '+' => BinOp::Add,
                    '-' => BinOp::Sub,
                    '*' => BinOp::Mul,
                    _ => BinOp::Div,
                }));
                i += 1;
            }
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            c if c.is_ascii_digit() || c == '.' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                let n: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
                out.push(Token::Num(n));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                    i += 1;
                }
                out.push(Token::Name(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character '{}' in the formula", other.escape_debug())),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    /// Precedence climbing: `+ -` bind looser than `* /`, all left-associative.
    fn expr(&mut self, depth: usize) -> Result<Formula, String> {
        let mut left = self.term(depth)?;
        while let Some(Token::Op(op @ (BinOp::Add | BinOp::Sub))) = self.tokens.get(self.at).cloned() {
            self.at += 1;
            let right = self.term(depth)?;
            left = Formula::Bin(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self, depth: usize) -> Result<Formula, String> {
        let mut left = self.atom(depth)?;
        while let Some(Token::Op(op @ (BinOp::Mul | BinOp::Div))) = self.tokens.get(self.at).cloned() {
            self.at += 1;
            let right = self.atom(depth)?;
            left = Formula::Bin(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn atom(&mut self, depth: usize) -> Result<Formula, String> {
        if depth > MAX_FORMULA_DEPTH {
            return Err(format!("a formula nests at most {MAX_FORMULA_DEPTH} parentheses deep"));
        }
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        match t {
            Some(Token::Name(n)) => Ok(Formula::Ref(n)),
            Some(Token::Num(n)) => Ok(Formula::Num(n)),
            Some(Token::Op(BinOp::Sub)) => {
                let inner = self.atom(depth + 1)?;
                Ok(Formula::Bin(BinOp::Sub, Box::new(Formula::Num(0.0)), Box::new(inner)))
            }
            Some(Token::Open) => {
                let inner = self.expr(depth + 1)?;
                match self.tokens.get(self.at) {
                    Some(Token::Close) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    _ => Err("a '(' in the formula is never closed".into()),
                }
            }
            Some(other) => Err(format!("unexpected {} in the formula", other.describe())),
            None => Err("the formula ends too early".into()),
        }
    }
}

/// A definition as declared.
#[derive(Debug, Clone, PartialEq)]
pub enum Definition {
    Measure(Measure),
    Formula(Formula),
}

/// A definition every tenant has, with the events it reads (the conventions of the docs).
pub struct Builtin {
    pub name: &'static str,
    pub description: &'static str,
    pub define: fn() -> Definition,
}

fn prop(path: &str) -> Field {
    Field::Property(PropertyPath::parse(path).expect("a built-in path is valid"))
}

fn named(names: &[&str]) -> Filter {
    let values: Vec<Scalar> = names.iter().map(|n| Scalar::Text((*n).to_owned())).collect();
    if values.len() == 1 {
        Filter::eq(Field::EventName, names[0])
    } else {
        Filter::Cond(Condition { field: Field::EventName, op: Op::In, operand: Operand::Many(values) })
    }
}

fn measure(agg: Aggregation, field: Option<Field>, filter: Option<Filter>) -> Definition {
    Definition::Measure(Measure { source: Source::Events, agg, field, filter })
}

/// Event names that are purchases.
pub const PURCHASE_EVENTS: [&str; 2] = ["purchase", "ticket_purchase"];

pub const BUILTINS: &[Builtin] = &[
    Builtin { name: "events", description: "Events of any name.", define: || measure(Aggregation::Count, None, None) },
    Builtin {
        name: "users",
        description: "Distinct user_id over events of any name.",
        define: || measure(Aggregation::Users, None, None),
    },
    Builtin {
        name: "active_users",
        description: "Distinct user_id with at least one event in the period.",
        define: || measure(Aggregation::Users, None, None),
    },
    Builtin {
        name: "sessions",
        description: "Sessions with an event in the period: a client's session_id, else a user's events \
                      without one, cut after 30 minutes of inactivity.",
        define: || measure(Aggregation::CountDistinct, Some(Field::Session), None),
    },
    Builtin {
        name: "revenue",
        description: "Sum of properties.amount over purchase and ticket_purchase events.",
        define: || measure(Aggregation::Sum, Some(prop("amount")), Some(named(&PURCHASE_EVENTS))),
    },
    Builtin {
        name: "purchases",
        description: "purchase and ticket_purchase events.",
        define: || measure(Aggregation::Count, None, Some(named(&PURCHASE_EVENTS))),
    },
    Builtin {
        name: "tickets_sold",
        description: "ticket_purchase events (one ticket each).",
        define: || measure(Aggregation::Count, None, Some(named(&["ticket_purchase"]))),
    },
    Builtin {
        name: "customers",
        description: "Distinct buyers (properties.customer_id, else user_id) of purchase and ticket_purchase events.",
        define: || measure(Aggregation::CountDistinct, Some(Field::CustomerId), Some(named(&PURCHASE_EVENTS))),
    },
    Builtin {
        name: "conversations",
        description: "conversation_started events.",
        define: || measure(Aggregation::Count, None, Some(named(&["conversation_started"]))),
    },
    Builtin {
        name: "messages",
        description: "message events.",
        define: || measure(Aggregation::Count, None, Some(named(&["message"]))),
    },
    Builtin {
        name: "tokens",
        description: "Sum of properties.token_count over events of any name.",
        define: || measure(Aggregation::Sum, Some(prop("token_count")), None),
    },
    Builtin {
        name: "cost",
        description: "Sum of properties.cost over events of any name.",
        define: || measure(Aggregation::Sum, Some(prop("cost")), None),
    },
    Builtin {
        name: "avg_response_time",
        description: "Average of properties.response_time_ms over events that carry it (message, api_request).",
        define: || measure(Aggregation::Avg, Some(prop("response_time_ms")), None),
    },
    Builtin {
        name: "api_requests",
        description: "api_request events.",
        define: || measure(Aggregation::Count, None, Some(named(&["api_request"]))),
    },
    Builtin {
        name: "errors",
        description: "api_request events with properties.status_code of 500 or more.",
        define: || {
            let status = Filter::Cond(Condition {
                field: prop("status_code"),
                op: Op::Gte,
                operand: Operand::One(Scalar::Number(500.0)),
            });
            measure(Aggregation::Count, None, Filter::and([named(&["api_request"]), status]))
        },
    },
    Builtin {
        name: "error_rate",
        description: "errors / api_requests: the share (0 to 1) of api_request events that failed.",
        define: || Definition::Formula(Formula::parse("errors / api_requests").expect("a built-in formula")),
    },
    Builtin {
        name: "satisfaction",
        description: "Average of properties.score over satisfaction events.",
        define: || measure(Aggregation::Avg, Some(prop("score")), Some(named(&["satisfaction"]))),
    },
];

/// Other names clients use for built-ins (seed 001's `tickets`, seed 004's `response_time`).
const ALIASES: &[(&str, &str)] = &[
    ("tickets", "tickets_sold"),
    ("total_events", "events"),
    ("unique_users", "users"),
    ("response_time", "avg_response_time"),
    ("tokens_used", "tokens"),
];

/// The built-in a name (or alias) stands for.
pub fn builtin(name: &str) -> Option<(&'static str, Definition)> {
    let name = ALIASES.iter().find(|(a, _)| *a == name).map(|(_, n)| *n).unwrap_or(name);
    BUILTINS.iter().find(|b| b.name == name).map(|b| (b.name, (b.define)()))
}

/// What a name can resolve against besides the built-ins.
pub trait Catalog {
    /// The tenant's own definition of `name`.
    fn custom(&self, name: &str) -> Option<Definition>;
    /// Whether the tenant has metric records named `name`.
    fn has_records(&self, name: &str) -> bool;
}

/// A catalog with no custom definitions and no records (tests, built-ins only).
pub struct NoCatalog;

impl Catalog for NoCatalog {
    fn custom(&self, _: &str) -> Option<Definition> {
        None
    }
    fn has_records(&self, _: &str) -> bool {
        false
    }
}

/// Most definitions one resolution may pass through.
const MAX_RESOLVE_DEPTH: usize = 16;

/// Why a metric name does not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// Not a built-in, not a custom metric, and no metric records of that name.
    Unknown(String),
    /// A formula reaches itself; the path from the first name back to it.
    Cycle(Vec<String>),
    /// Definitions nest deeper than allowed.
    TooDeep,
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::Unknown(name) => write!(
                f,
                "unknown metric '{name}': not a built-in, not one of the tenant's custom metrics, and no metric records carry that metric_name"
            ),
            ResolveError::Cycle(path) => write!(f, "the formula refers to itself: {}", path.join(" -> ")),
            ResolveError::TooDeep => write!(f, "formulas nest at most {MAX_RESOLVE_DEPTH} definitions deep"),
        }
    }
}

impl ResolveError {
    /// An unresolved reference is well-formed but names nothing usable (422); too deep a
    /// nesting is a bad request (400).
    pub fn code(&self) -> crate::code::Code {
        match self {
            ResolveError::Unknown(_) | ResolveError::Cycle(_) => crate::code::Code::Unprocessable,
            ResolveError::TooDeep => crate::code::Code::Validation,
        }
    }

    /// This problem, reported against `field`.
    pub fn at(&self, field: impl Into<String>) -> crate::code::FieldError {
        crate::code::FieldError::with_code(field, self.to_string(), self.code())
    }
}

/// Resolves a name to its computation. A name with no definition falls back to metric
/// records of that `metric_name` (summed), if the tenant has any.
pub fn resolve(name: &str, catalog: &dyn Catalog) -> Result<Expr, ResolveError> {
    let mut path = Vec::new();
    resolve_in(name, catalog, &mut path)
}

fn resolve_in(name: &str, catalog: &dyn Catalog, path: &mut Vec<String>) -> Result<Expr, ResolveError> {
    if path.iter().any(|p| p == name) {
        path.push(name.to_owned());
        return Err(ResolveError::Cycle(path.clone()));
    }
    if path.len() >= MAX_RESOLVE_DEPTH {
        return Err(ResolveError::TooDeep);
    }
    let def = match catalog.custom(name) {
        Some(d) => d,
        None => match builtin(name) {
            Some((_, d)) => d,
            None if catalog.has_records(name) => return Ok(Expr::Measure(records_of(name, Aggregation::Sum))),
            None => return Err(ResolveError::Unknown(name.to_owned())),
        },
    };
    path.push(name.to_owned());
    let out = match def {
        Definition::Measure(m) => Ok(Expr::Measure(m)),
        Definition::Formula(f) => formula_expr(&f, catalog, path),
    };
    path.pop();
    out
}

fn formula_expr(f: &Formula, catalog: &dyn Catalog, path: &mut Vec<String>) -> Result<Expr, ResolveError> {
    Ok(match f {
        Formula::Ref(r) => resolve_in(r, catalog, path)?,
        Formula::Num(n) => Expr::Num(*n),
        Formula::Bin(op, a, b) => {
            Expr::Bin(*op, Box::new(formula_expr(a, catalog, path)?), Box::new(formula_expr(b, catalog, path)?))
        }
    })
}

/// Resolves a formula written inline (not saved under a name).
pub fn resolve_formula(f: &Formula, catalog: &dyn Catalog) -> Result<Expr, ResolveError> {
    formula_expr(f, catalog, &mut Vec::new())
}

/// Metric records of one `metric_name`, aggregated over `value`.
pub fn records_of(metric_name: &str, agg: Aggregation) -> Measure {
    let agg = if agg == Aggregation::Users { Aggregation::Count } else { agg };
    Measure {
        source: Source::MetricRecords,
        agg,
        field: agg.needs_field().then_some(Field::Value),
        filter: Some(Filter::eq(Field::MetricName, metric_name)),
    }
}

/// Whether a name may name a custom metric: 1 to 100 of `[A-Za-z0-9_.]`, starting with a
/// letter, and not a built-in (their meaning is fixed for every tenant).
pub fn check_custom_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 100 {
        return Err("metric_name has 1 to 100 characters".into());
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Err("metric_name starts with a letter and holds only letters, digits, '_' and '.'".into());
    }
    if builtin(name).is_some() {
        return Err(format!("'{name}' is a built-in metric; choose another name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, Definition>, Vec<&'static str>);
    impl Catalog for Map {
        fn custom(&self, name: &str) -> Option<Definition> {
            self.0.get(name).cloned()
        }
        fn has_records(&self, name: &str) -> bool {
            self.1.contains(&name)
        }
    }

    fn f(s: &str) -> Definition {
        Definition::Formula(Formula::parse(s).unwrap())
    }

    #[test]
    fn formulas_parse_with_precedence() {
        let x = Formula::parse("a + b * 2 / (c - 1)").unwrap();
        assert_eq!(x.refs(), vec!["a", "b", "c"]);
        match x {
            Formula::Bin(BinOp::Add, _, r) => assert!(matches!(*r, Formula::Bin(BinOp::Div, ..))),
            other => panic!("{other:?}"),
        }
        for bad in ["", "a +", "(a", "a b", "a ; drop", "a / 0", "a / (2 - 2)", "1..2", "a $ b"] {
            assert!(Formula::parse(bad).is_err(), "{bad}");
        }
        assert!(Formula::parse(&"(".repeat(40)).is_err());
        assert!(Formula::parse("a / (2 - 1)").is_ok());
    }

    #[test]
    fn names_resolve_through_custom_builtin_and_records() {
        let cat = Map(
            HashMap::from([
                ("conversion_rate", f("completed_purchases / total_conversations")),
                ("total_conversations", f("conversations")),
                ("loop_a", f("loop_b + 1")),
                ("loop_b", f("loop_a * 2")),
            ]),
            vec!["completed_purchases"],
        );
        let e = resolve("conversion_rate", &cat).unwrap();
        let ms = e.measures();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].source, Source::MetricRecords);
        assert_eq!(ms[1].filter, Some(Filter::eq(Field::EventName, "conversation_started")));
        assert!(!e.is_additive());
        let cycle = resolve("loop_a", &cat).unwrap_err();
        assert!(cycle.to_string().contains("loop_a -> loop_b -> loop_a"), "{cycle}");
        assert_eq!(cycle.code(), crate::code::Code::Unprocessable);
        assert!(resolve("nothing_here", &cat).unwrap_err().to_string().contains("unknown metric"));
        assert_eq!(resolve("nothing_here", &cat).unwrap_err().code(), crate::code::Code::Unprocessable);
        assert!(resolve("tickets", &NoCatalog).is_ok());
        assert!(resolve("error_rate", &NoCatalog).is_ok());
    }

    #[test]
    fn custom_names_may_not_shadow_builtins() {
        assert!(check_custom_name("revenue").is_err());
        assert!(check_custom_name("tickets").is_err());
        assert!(check_custom_name("conversion_rate").is_ok());
        assert!(check_custom_name("1x").is_err());
        assert!(check_custom_name("a'b").is_err());
    }

    #[test]
    fn aggregations_parse() {
        assert_eq!(Aggregation::parse("p90"), Some(Aggregation::Percentile(90)));
        assert_eq!(Aggregation::parse("median"), Some(Aggregation::Percentile(50)));
        assert_eq!(Aggregation::parse("p100"), None);
        assert_eq!(Aggregation::parse("Average"), Some(Aggregation::Avg));
        assert!(Measure::new(Source::Events, Aggregation::Sum, None, None).is_err());
    }
}

#[cfg(test)]
mod docs {
    /// The docs list every built-in: they are part of the API.
    #[test]
    fn every_builtin_is_documented() {
        let doc = include_str!("../../../../docs/metrics.md");
        for b in super::BUILTINS {
            assert!(doc.contains(&format!("| `{}`", b.name)), "docs/metrics.md lacks {}", b.name);
        }
        for (alias, _) in super::ALIASES {
            assert!(doc.contains(&format!("alias `{alias}`")), "docs/metrics.md lacks alias {alias}");
        }
    }
}
