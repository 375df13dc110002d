//! Representative parameter values of the built-in statements, rendered as SQL literals.
//!
//! Every built-in statement casts its placeholders explicitly (`$1::bigint`, `$1::float8`), so a
//! value only has to be a number the cast accepts; the advisor substitutes these literals into a
//! statement to `EXPLAIN` it ([`super::render_simple`]).

use std::fmt::Write as _;

/// One parameter value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param {
    /// bigint (or integer).
    I64(i64),
    /// double precision.
    F64(f64),
}

impl Param {
    /// Appends this value as an SQL literal.
    pub fn write_literal(&self, buf: &mut String) {
        let _ = match *self {
            Param::I64(v) => write!(buf, "{v}"),
            Param::F64(v) => write!(buf, "{v}"),
        };
    }
}
