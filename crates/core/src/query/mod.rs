//! Analyses as values. Client input is parsed into a [`insight::Query`] (fields from
//! [`field`], conditions from [`filter`], ranges and buckets from [`time`], named
//! computations from [`metric`]); [`compile`] turns it into SQL with every value bound;
//! [`answer`] shapes the rows the engine returns.

pub mod answer;
pub mod compile;
pub mod conversations;
pub mod custom;
pub mod field;
pub mod filter;
pub mod funnel;
pub mod insight;
pub mod metric;
pub mod realtime;
pub mod retention;
pub mod rfm;
pub mod segment;
pub mod session;
pub mod time;
pub mod user;
