//! The built-in query types over the POS dataset, as pgbench scripts built in code.
//!
//! Each type is a [`Script`], so the one script executor runs it on both drivers: the pool
//! driver's blocking path and the multiplexed driver's resumable one (`-j`). Parameters are drawn
//! by `\set name random(lo, hi)` with bounds written in from the seeded data window
//! ([`DataRange`]), so every execution hits real rows.
//!
//! Invariants:
//! - Every placeholder is cast in the SQL (`::bigint`, `::float8`), so the server infers the
//!   same parameter types as a typed bind would, and the plans stay what they were (index scans
//!   where there were index scans). A script variable holds a number, not a timestamp: instants
//!   travel as microseconds since the Unix epoch, turned into a `timestamptz` by
//!   `to_timestamp(µs / 1e6)`, which is immutable, so the planner folds it into a constant bound
//!   of the index scan.
//! - `transaction` always rolls back: its last command is ROLLBACK, and after an error inside
//!   the block the executor rolls back before the client goes on (both drivers). It exercises
//!   writes and row locks but leaves the row counts unchanged (tested against the server).
//! - Unlike a pgbench script, a built-in type never aborts its client: an error is counted and
//!   the client goes on ([`Script::aborts_clients`]), as the load has always run them.

use anyhow::Result;

use super::script::{Predefined, Script};
use super::{DataRange, Param};

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

/// `SELECT 1`: a round trip that touches no table.
const PING_SQL: &str = "SELECT 1";

/// Count of orders in one hour.
const SIMPLE_SQL: &str = "SELECT count(*) FROM pgstorm.pos_order \
     WHERE create_date >= to_timestamp(:t::float8 / 1000000) \
     AND create_date < to_timestamp(:t::float8 / 1000000) + interval '1 hour'";

/// A customer's latest order lines: orders ⋈ partners ⋈ lines, newest first.
const JOIN_SQL: &str = "SELECT o.id, o.create_date, p.name, l.product_id, l.qty, l.price_subtotal \
     FROM pgstorm.pos_order o \
     JOIN pgstorm.res_partner p ON p.id = o.partner_id \
     JOIN pgstorm.pos_order_line l ON l.order_id = o.id \
     WHERE o.partner_id = :partner::bigint ORDER BY o.create_date DESC, l.id LIMIT 100";

/// Daily sales report over a week.
const AGGREGATION_SQL: &str = "SELECT date_trunc('day', create_date) AS day, sum(amount_total), \
     avg(amount_total), count(*) FROM pgstorm.pos_order \
     WHERE create_date >= to_timestamp(:from::float8 / 1000000) \
     AND create_date < to_timestamp(:to::float8 / 1000000) \
     GROUP BY 1 ORDER BY 1";

/// BEGIN; insert an order; update another order's lines; ROLLBACK.
const TX_INSERT_SQL: &str =
    "INSERT INTO pgstorm.pos_order (partner_id, create_date, amount_total, state) \
     VALUES (:partner::bigint, to_timestamp(:at::float8 / 1000000), \
     :amount::float8::numeric(12,2), 'draft') RETURNING id";
const TX_UPDATE_SQL: &str =
    "UPDATE pgstorm.pos_order_line SET qty = qty + 1 WHERE order_id = :order::bigint";

/// Orders in an amount range, sorted by amount (index range scan).
const INDEX_SQL: &str = "SELECT id, amount_total FROM pgstorm.pos_order \
     WHERE amount_total >= :lo::float8::numeric AND amount_total < :hi::float8::numeric \
     ORDER BY amount_total LIMIT 50";

/// Primary-key lookup: the cheapest query, the probe for client overhead.
const POINT_SQL: &str =
    "SELECT id, partner_id, amount_total FROM pgstorm.pos_order WHERE id = :id::bigint";

/// The script text of the named built-in type, its random bounds taken from `d`.
fn text(name: &str, d: &DataRange) -> Option<String> {
    let (partners, orders) = (d.partners.max(1), d.orders.max(1));
    // The last instant that leaves `span` before the end of the window.
    let last = |span: i64| (d.end_us - span).max(d.start_us);
    let start = d.start_us;
    Some(match name {
        PING => format!("{PING_SQL};\n"),
        "simple" => format!(
            "\\set t random({start}, {})\n{SIMPLE_SQL};\n",
            last(HOUR_US)
        ),
        "join" => format!("\\set partner random(1, {partners})\n{JOIN_SQL};\n"),
        "aggregation" => format!(
            "\\set from random({start}, {})\n\\set to :from + {}\n{AGGREGATION_SQL};\n",
            last(7 * DAY_US),
            7 * DAY_US
        ),
        "transaction" => format!(
            "\\set partner random(1, {partners})\n\\set order random(1, {orders})\n\
             \\set at random({start}, {})\n\\set amount random(50, 50000) / 100.0\n\
             BEGIN;\n{TX_INSERT_SQL};\n{TX_UPDATE_SQL};\nROLLBACK;\n",
            last(0)
        ),
        "index" => {
            format!("\\set lo random(100, 20000) / 100.0\n\\set hi :lo + 5.0\n{INDEX_SQL};\n")
        }
        "point" => format!("\\set id random(1, {orders})\n{POINT_SQL};\n"),
        _ => return None,
    })
}

/// Builds the named built-in query type (`ping` included) over the data window `data`; `seed`
/// seeds each client's random stream as it seeds a script's (the run's seed).
pub fn by_name(name: &str, data: &DataRange, seed: u64) -> Option<Script> {
    let text = text(name, data)?;
    let predefined = Predefined {
        seed,
        ..Predefined::default()
    };
    // The texts are this module's own and a unit test parses every one.
    Script::parse(name, name, &text, predefined)
        .ok()
        .map(Script::without_client_aborts)
}

/// The SQL of each statement of the named built-in type, as it is prepared (`$n` placeholders,
/// one per variable reference, in order).
pub fn statements(name: &str) -> Option<Vec<String>> {
    let unit = DataRange {
        partners: 1,
        orders: 1,
        start_us: 0,
        end_us: DAY_US,
    };
    by_name(name, &unit, 0).map(|s| s.statements_sql().to_vec())
}

/// Representative parameters for each statement of the named built-in type (statement order,
/// one per placeholder), taken from the middle of the data window, so the advisor can `EXPLAIN`
/// the workload's own queries with values like those the clients send; `None` for a statement
/// without a plan (BEGIN, ROLLBACK). Kept beside the types so they stay in step.
pub fn representative_params(name: &str, d: &DataRange) -> Option<Vec<Option<Vec<Param>>>> {
    // Noon of the middle day: shops are open, so the hour holds orders.
    let mid = (d.start_us + (d.end_us - d.start_us) / 2 + 12 * HOUR_US).min(d.end_us - HOUR_US);
    let partner = (d.partners / 2).max(1);
    let order = (d.orders / 2).max(1);
    let plans = |params: Vec<Vec<Param>>| params.into_iter().map(Some).collect();
    Some(match name {
        "simple" => plans(vec![vec![Param::I64(mid), Param::I64(mid)]]),
        "join" => plans(vec![vec![Param::I64(partner)]]),
        "aggregation" => {
            let from = (mid - 7 * DAY_US / 2).max(d.start_us);
            plans(vec![vec![Param::I64(from), Param::I64(from + 7 * DAY_US)]])
        }
        "transaction" => vec![
            None,
            Some(vec![
                Param::I64(partner),
                Param::I64(mid),
                Param::F64(100.0),
            ]),
            Some(vec![Param::I64(order)]),
            None,
        ],
        "index" => plans(vec![vec![Param::F64(100.0), Param::F64(105.0)]]),
        "point" => plans(vec![vec![Param::I64(order)]]),
        _ => return None,
    })
}

/// Builds the built-in types of a parsed mix over the data window `data`, each client's random
/// stream seeded from `seed`.
pub fn from_mix(
    mix: &[(String, u32)],
    data: &DataRange,
    seed: u64,
) -> Result<Vec<(Box<dyn super::QueryType>, u32)>> {
    mix.iter()
        .map(|(name, w)| {
            by_name(name, data, seed)
                .map(|t| (Box::new(t) as Box<dyn super::QueryType>, *w))
                .ok_or_else(|| crate::error::usage(format!("unknown query type '{name}'")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> DataRange {
        DataRange {
            partners: 100,
            orders: 1000,
            start_us: 1_767_225_600_000_000,
            end_us: 1_767_225_600_000_000 + 30 * DAY_US,
        }
    }

    #[test]
    fn every_builtin_parses_and_has_representative_params_for_each_placeholder() {
        let d = data();
        for name in NAMES {
            let statements = statements(name).unwrap();
            let params = representative_params(name, &d).unwrap();
            assert_eq!(statements.len(), params.len(), "{name}");
            for (sql, p) in statements.iter().zip(&params) {
                let mut buf = String::new();
                crate::workload::render_simple(&mut buf, sql, p.as_deref().unwrap_or(&[]));
                let placeholders = sql.matches('$').count();
                assert_eq!(
                    placeholders,
                    p.as_ref().map_or(0, Vec::len),
                    "{name}: {sql}"
                );
                assert!(!buf.contains('$'), "{name}: {buf}");
            }
        }
        assert!(by_name(PING, &d, 1).is_some());
        assert!(representative_params("custom", &d).is_none());
        assert!(by_name("custom", &d, 1).is_none());
    }

    #[test]
    fn transaction_ends_with_rollback_and_no_type_aborts_its_client() {
        let d = data();
        let tx = statements("transaction").unwrap();
        assert_eq!(
            (
                tx.first().map(String::as_str),
                tx.last().map(String::as_str)
            ),
            (Some("BEGIN"), Some("ROLLBACK"))
        );
        for name in NAMES.iter().chain([&PING]) {
            assert!(!by_name(name, &d, 1).unwrap().aborts_clients(), "{name}");
        }
    }

    #[test]
    fn an_empty_window_still_builds_valid_bounds() {
        let d = DataRange {
            partners: 0,
            orders: 0,
            start_us: 5,
            end_us: 5,
        };
        for name in NAMES {
            assert!(by_name(name, &d, 1).is_some(), "{name}");
        }
    }
}
