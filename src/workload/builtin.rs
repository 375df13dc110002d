//! The six built-in query types over the POS dataset.
//!
//! Each draws its parameters inside the seeded data window ([`DataRange`]) so every execution hits
//! real rows. `transaction` always rolls back: it exercises writes and row locks but leaves the
//! row counts unchanged (tested against the server).

use anyhow::Result;

use super::{DataRange, ExecCtx, ExecError, Param, QueryType};

const HOUR_US: i64 = 3_600_000_000;
const DAY_US: i64 = 24 * HOUR_US;

/// Names of the built-in query types, as `--mix` accepts them.
pub const NAMES: [&str; 6] = [
    "simple",
    "join",
    "aggregation",
    "transaction",
    "index",
    "point",
];

/// The default mix of `pgstorm queries` and `pgstorm run`.
pub const DEFAULT_MIX: &str = "simple=4,join=1,aggregation=1,transaction=1,index=2,point=10";

/// The connection scenario's probe: `SELECT 1`, no dataset needed (what a pool health check sends).
pub const PING: &str = "ping";

/// Builds the named built-in query type.
pub fn by_name(name: &str) -> Option<Box<dyn QueryType>> {
    Some(match name {
        PING => Box::new(Ping),
        "simple" => Box::new(Simple),
        "join" => Box::new(Join),
        "aggregation" => Box::new(Aggregation),
        "transaction" => Box::new(Transaction),
        "index" => Box::new(Index),
        "point" => Box::new(Point),
        _ => return None,
    })
}

/// A random instant inside the data window, leaving `span` room before the end.
fn instant(ctx: &mut ExecCtx<'_>, span: i64) -> i64 {
    let d: &DataRange = ctx.data;
    let hi = (d.end_us - span).max(d.start_us);
    ctx.rng.range_i64(d.start_us, hi)
}

/// `SELECT 1`: a round trip that touches no table.
pub struct Ping;
const PING_SQL: &str = "SELECT 1";

impl QueryType for Ping {
    fn name(&self) -> &str {
        PING
    }
    fn statements(&self) -> Vec<String> {
        vec![PING_SQL.into()]
    }
    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<(), ExecError> {
        Ok(ctx.run(0, PING_SQL, &[])?)
    }
}

/// Count of orders in one hour.
pub struct Simple;
const SIMPLE_SQL: &str = "SELECT count(*) FROM pgstorm.pos_order \
     WHERE create_date >= $1::timestamptz AND create_date < $1::timestamptz + interval '1 hour'";

impl QueryType for Simple {
    fn name(&self) -> &str {
        "simple"
    }
    fn statements(&self) -> Vec<String> {
        vec![SIMPLE_SQL.into()]
    }
    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<(), ExecError> {
        let t = instant(ctx, HOUR_US);
        ctx.run(0, SIMPLE_SQL, &[Param::Ts(t)])
            .map_err(ExecError::from)
    }
}

/// A customer's latest order lines: orders ⋈ partners ⋈ lines, newest first.
pub struct Join;
const JOIN_SQL: &str = "SELECT o.id, o.create_date, p.name, l.product_id, l.qty, l.price_subtotal \
     FROM pgstorm.pos_order o \
     JOIN pgstorm.res_partner p ON p.id = o.partner_id \
     JOIN pgstorm.pos_order_line l ON l.order_id = o.id \
     WHERE o.partner_id = $1::bigint ORDER BY o.create_date DESC, l.id LIMIT 100";

impl QueryType for Join {
    fn name(&self) -> &str {
        "join"
    }
    fn statements(&self) -> Vec<String> {
        vec![JOIN_SQL.into()]
    }
    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<(), ExecError> {
        let partner = ctx.rng.range_i64(1, ctx.data.partners.max(1));
        ctx.run(0, JOIN_SQL, &[Param::I64(partner)])
            .map_err(ExecError::from)
    }
}

/// Daily sales report over a week.
pub struct Aggregation;
const AGGREGATION_SQL: &str = "SELECT date_trunc('day', create_date) AS day, sum(amount_total), \
     avg(amount_total), count(*) FROM pgstorm.pos_order \
     WHERE create_date >= $1::timestamptz AND create_date < $2::timestamptz \
     GROUP BY 1 ORDER BY 1";

impl QueryType for Aggregation {
    fn name(&self) -> &str {
        "aggregation"
    }
    fn statements(&self) -> Vec<String> {
        vec![AGGREGATION_SQL.into()]
    }
    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<(), ExecError> {
        let from = instant(ctx, 7 * DAY_US);
        ctx.run(
            0,
            AGGREGATION_SQL,
            &[Param::Ts(from), Param::Ts(from + 7 * DAY_US)],
        )
        .map_err(ExecError::from)
    }
}

/// BEGIN; insert an order; update another order's lines; ROLLBACK.
pub struct Transaction;
const TX_BEGIN_SQL: &str = "BEGIN";
const TX_INSERT_SQL: &str =
    "INSERT INTO pgstorm.pos_order (partner_id, create_date, amount_total, state) \
     VALUES ($1::bigint, $2::timestamptz, $3::float8::numeric(12,2), 'draft') RETURNING id";
const TX_UPDATE_SQL: &str =
    "UPDATE pgstorm.pos_order_line SET qty = qty + 1 WHERE order_id = $1::bigint";
const TX_ROLLBACK_SQL: &str = "ROLLBACK";

impl QueryType for Transaction {
    fn name(&self) -> &str {
        "transaction"
    }
    // BEGIN and ROLLBACK are statements of the type like the others, so they travel by the
    // run's protocol (prepared, unnamed or simple) as pgbench sends a script's BEGIN and END.
    fn statements(&self) -> Vec<String> {
        [TX_BEGIN_SQL, TX_INSERT_SQL, TX_UPDATE_SQL, TX_ROLLBACK_SQL]
            .map(String::from)
            .to_vec()
    }
    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<(), ExecError> {
        let partner = ctx.rng.range_i64(1, ctx.data.partners.max(1));
        let order = ctx.rng.range_i64(1, ctx.data.orders.max(1));
        let at = instant(ctx, 0);
        let amount = ctx.rng.range_i64(50, 50_000) as f64 / 100.0;
        ctx.run(0, TX_BEGIN_SQL, &[])?;
        let body = ctx
            .run(
                1,
                TX_INSERT_SQL,
                &[Param::I64(partner), Param::Ts(at), Param::F64(amount)],
            )
            .and_then(|()| ctx.run(2, TX_UPDATE_SQL, &[Param::I64(order)]));
        // Roll back whatever happened; a failed ROLLBACK on a broken connection is reported by
        // the body's error first.
        let rollback = ctx.run(3, TX_ROLLBACK_SQL, &[]);
        Ok(body.and(rollback)?)
    }
}

/// Orders in an amount range, sorted by amount (index range scan).
pub struct Index;
const INDEX_SQL: &str = "SELECT id, amount_total FROM pgstorm.pos_order \
     WHERE amount_total >= $1::float8::numeric AND amount_total < $2::float8::numeric \
     ORDER BY amount_total LIMIT 50";

impl QueryType for Index {
    fn name(&self) -> &str {
        "index"
    }
    fn statements(&self) -> Vec<String> {
        vec![INDEX_SQL.into()]
    }
    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<(), ExecError> {
        let lo = ctx.rng.range_i64(100, 20_000) as f64 / 100.0;
        ctx.run(0, INDEX_SQL, &[Param::F64(lo), Param::F64(lo + 5.0)])
            .map_err(ExecError::from)
    }
}

/// Primary-key lookup: the cheapest query, the probe for client overhead.
pub struct Point;
const POINT_SQL: &str =
    "SELECT id, partner_id, amount_total FROM pgstorm.pos_order WHERE id = $1::bigint";

impl QueryType for Point {
    fn name(&self) -> &str {
        "point"
    }
    fn statements(&self) -> Vec<String> {
        vec![POINT_SQL.into()]
    }
    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<(), ExecError> {
        let id = ctx.rng.range_i64(1, ctx.data.orders.max(1));
        ctx.run(0, POINT_SQL, &[Param::I64(id)])
            .map_err(ExecError::from)
    }
}

/// Representative parameters for each statement of the named built-in type (statement order),
/// taken from the middle of the data window, so the advisor can `EXPLAIN` the workload's own
/// queries with values like those the workers send; `None` for a statement without a plan
/// (BEGIN, ROLLBACK). Kept beside the types so they stay in step.
pub fn representative_params(name: &str, d: &DataRange) -> Option<Vec<Option<Vec<Param>>>> {
    // Noon of the middle day: shops are open, so the hour holds orders.
    let mid = (d.start_us + (d.end_us - d.start_us) / 2 + 12 * HOUR_US).min(d.end_us - HOUR_US);
    let partner = (d.partners / 2).max(1);
    let order = (d.orders / 2).max(1);
    let plans = |params: Vec<Vec<Param>>| params.into_iter().map(Some).collect();
    Some(match name {
        "simple" => plans(vec![vec![Param::Ts(mid)]]),
        "join" => plans(vec![vec![Param::I64(partner)]]),
        "aggregation" => {
            let from = (mid - 7 * DAY_US / 2).max(d.start_us);
            plans(vec![vec![Param::Ts(from), Param::Ts(from + 7 * DAY_US)]])
        }
        "transaction" => vec![
            None,
            Some(vec![Param::I64(partner), Param::Ts(mid), Param::F64(100.0)]),
            Some(vec![Param::I64(order)]),
            None,
        ],
        "index" => plans(vec![vec![Param::F64(100.0), Param::F64(105.0)]]),
        "point" => plans(vec![vec![Param::I64(order)]]),
        _ => return None,
    })
}

/// Builds the built-in types of a parsed mix.
pub fn from_mix(mix: &[(String, u32)]) -> Result<Vec<(Box<dyn QueryType>, u32)>> {
    mix.iter()
        .map(|(name, w)| {
            by_name(name)
                .map(|t| (t, *w))
                .ok_or_else(|| crate::error::usage(format!("unknown query type '{name}'")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_has_representative_params_for_each_statement() {
        let d = DataRange {
            partners: 100,
            orders: 1000,
            start_us: 0,
            end_us: 30 * DAY_US,
        };
        for name in NAMES {
            let statements = by_name(name).unwrap().statements();
            let params = representative_params(name, &d).unwrap();
            assert_eq!(statements.len(), params.len(), "{name}");
        }
        assert!(representative_params("custom", &d).is_none());
    }
}
