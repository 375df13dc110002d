//! Query parameters that live on the stack and bind without allocation.
//!
//! Every built-in statement casts its placeholders explicitly (`$1::bigint`, `$1::float8`,
//! `$1::timestamptz`), so the server-side types are fixed and a [`Param`] only has to encode
//! those three. The simple protocol renders the same values as SQL literals.

use std::fmt::Write as _;

use postgres::types::{to_sql_checked, IsNull, ToSql, Type};

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// One parameter value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param {
    /// bigint (or integer).
    I64(i64),
    /// double precision.
    F64(f64),
    /// timestamptz as microseconds since the Unix epoch.
    Ts(i64),
}

impl Param {
    /// The type the value is sent as when the statement is parsed with explicit parameter types
    /// (`-M extended`); it matches the placeholder's cast in every built-in statement.
    pub fn sql_type(&self) -> Type {
        match self {
            Param::I64(_) => Type::INT8,
            Param::F64(_) => Type::FLOAT8,
            Param::Ts(_) => Type::TIMESTAMPTZ,
        }
    }

    /// Appends this value as an SQL literal.
    pub fn write_literal(&self, buf: &mut String) {
        match *self {
            Param::I64(v) => {
                let _ = write!(buf, "{v}");
            }
            Param::F64(v) => {
                let _ = write!(buf, "{v}");
            }
            Param::Ts(us) => {
                let ts = chrono::DateTime::from_timestamp_micros(us).unwrap_or_default();
                let _ = write!(
                    buf,
                    "'{}'::timestamptz",
                    ts.format("%Y-%m-%d %H:%M:%S%.6f+00")
                );
            }
        }
    }
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match (*self, ty) {
            (Param::I64(v), &Type::INT8) => v.to_sql(ty, out),
            (Param::I64(v), &Type::INT4) => i32::try_from(v)?.to_sql(ty, out),
            (Param::F64(v), &Type::FLOAT8) => v.to_sql(ty, out),
            (Param::Ts(us), &Type::TIMESTAMPTZ) | (Param::Ts(us), &Type::TIMESTAMP) => {
                (us - PG_EPOCH_OFFSET_US).to_sql(&Type::INT8, out)
            }
            (p, t) => Err(format!("parameter {p:?} cannot be sent as {t}").into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8 | Type::INT4 | Type::FLOAT8 | Type::TIMESTAMPTZ | Type::TIMESTAMP
        )
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_literal_is_utc_with_micros() {
        let mut s = String::new();
        Param::Ts(1_767_225_600_000_001).write_literal(&mut s);
        assert_eq!(s, "'2026-01-01 00:00:00.000001+00'::timestamptz");
    }
}
