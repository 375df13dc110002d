//! `EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON)` of the workload's own statements, with
//! representative parameters, flattened into the plan facts the advisor's rules need.
//!
//! Invariants: every statement is explained inside a transaction that is rolled back (EXPLAIN
//! ANALYZE really executes it, and the `transaction` type writes), under a statement_timeout, on
//! the advisor's connection, after the "after" snapshot so the explains do not count as load.

use postgres::{Client, SimpleQueryMessage};
use serde_json::Value;

use crate::workload::{builtin, render_simple, DataRange};

/// Longest an EXPLAIN ANALYZE may run before the advisor gives up on that statement.
const EXPLAIN_TIMEOUT: &str = "30s";

/// One node of a plan, with the fields the rules read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanNode {
    /// Depth in the tree (0 = root).
    pub depth: usize,
    /// `Seq Scan`, `Index Scan`, `Sort`, `Hash`, ...
    pub node_type: String,
    /// `schema.relation` for scans.
    pub relation: Option<String>,
    /// Index used, for index scans.
    pub index: Option<String>,
    /// `Filter` expression.
    pub filter: Option<String>,
    /// `Index Cond` / `Recheck Cond`.
    pub index_cond: Option<String>,
    /// Planner's row estimate (per loop).
    pub plan_rows: f64,
    /// Actual rows (per loop).
    pub actual_rows: f64,
    /// Loops.
    pub loops: f64,
    /// Rows removed by the filter (per loop).
    pub removed_by_filter: f64,
    /// `Sort Method`.
    pub sort_method: Option<String>,
    /// `Sort Space Type` (`Disk` when the sort spilled).
    pub sort_space_type: Option<String>,
    /// `Sort Space Used` (kB).
    pub sort_space_kb: f64,
    /// `Hash Batches` or `HashAgg Batches` (> 1: the hash spilled).
    pub hash_batches: i64,
    /// `Peak Memory Usage` of a hash, or `Disk Usage` of a spilled HashAggregate, whichever is
    /// larger (kB).
    pub peak_memory_kb: f64,
    /// Temp blocks written by this node and its children.
    pub temp_written_blocks: i64,
    /// `Group Key` expressions of an aggregate or group node.
    pub group_key: Vec<String>,
}

impl PlanNode {
    /// Rows the node looked at: returned plus filtered out, over all loops.
    pub fn rows_scanned(&self) -> f64 {
        (self.actual_rows + self.removed_by_filter) * self.loops.max(1.0)
    }

    /// One line: `Seq Scan on pgstorm.pos_order (rows 28 of 20000 scanned, removed 19972) Filter: ...`.
    pub fn describe(&self) -> String {
        let mut s = self.node_type.clone();
        if let Some(i) = &self.index {
            s.push_str(&format!(" using {i}"));
        }
        if let Some(r) = &self.relation {
            s.push_str(&format!(" on {r}"));
        }
        s.push_str(&format!(
            " (est rows {:.0}, actual rows {:.0}, loops {:.0}",
            self.plan_rows, self.actual_rows, self.loops
        ));
        if self.removed_by_filter > 0.0 {
            s.push_str(&format!(
                ", removed by filter {:.0}",
                self.removed_by_filter
            ));
        }
        if let Some(m) = &self.sort_method {
            s.push_str(&format!(
                ", sort {m} {:.0} kB {}",
                self.sort_space_kb,
                self.sort_space_type.as_deref().unwrap_or("")
            ));
        }
        if self.hash_batches > 0 {
            s.push_str(&format!(
                ", hash batches {} peak {:.0} kB",
                self.hash_batches, self.peak_memory_kb
            ));
        }
        if self.temp_written_blocks > 0 {
            s.push_str(&format!(
                ", temp written {} blocks",
                self.temp_written_blocks
            ));
        }
        s.push(')');
        if let Some(c) = &self.index_cond {
            s.push_str(&format!(" Cond: {c}"));
        }
        if let Some(f) = &self.filter {
            s.push_str(&format!(" Filter: {f}"));
        }
        s
    }
}

/// An explained statement of the workload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExplainedPlan {
    /// Query type.
    pub query_type: String,
    /// Statement with literal parameters.
    pub sql: String,
    /// Nodes in depth-first order.
    pub nodes: Vec<PlanNode>,
    /// `Execution Time` (ms).
    pub execution_ms: f64,
    /// JIT total time (ms), when JIT compiled anything.
    pub jit_ms: Option<f64>,
    /// Why it could not be explained.
    pub error: Option<String>,
}

impl ExplainedPlan {
    /// The plan as indented lines.
    pub fn render(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}{}", "  ".repeat(n.depth), n.describe()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Temp blocks written by the whole plan (the root's count includes its children).
    pub fn temp_written_blocks(&self) -> i64 {
        self.nodes.first().map_or(0, |n| n.temp_written_blocks)
    }
}

/// Explains every statement of the named built-in query types (unknown names are skipped: a
/// custom script has no representative parameters).
pub fn explain_workload(
    client: &mut Client,
    types: &[String],
    data: &DataRange,
) -> Vec<ExplainedPlan> {
    let mut out = Vec::new();
    let mut buf = String::new();
    for name in types {
        let (Some(statements), Some(params)) = (
            builtin::statements(name),
            builtin::representative_params(name, data),
        ) else {
            continue;
        };
        for (sql, p) in statements.iter().zip(&params) {
            let Some(p) = p else { continue };
            render_simple(&mut buf, sql, p);
            out.push(explain_one(client, name, &buf));
        }
    }
    out
}

/// Explains one statement inside a rolled-back transaction.
pub fn explain_one(client: &mut Client, query_type: &str, sql: &str) -> ExplainedPlan {
    let mut plan = ExplainedPlan {
        query_type: query_type.to_string(),
        sql: sql.to_string(),
        ..ExplainedPlan::default()
    };
    let text = client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL statement_timeout = '{EXPLAIN_TIMEOUT}'"
        ))
        .and_then(|()| {
            client.simple_query(&format!(
                "EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON) {sql}"
            ))
        });
    let _ = client.batch_execute("ROLLBACK");
    let text = match text {
        Ok(msgs) => msgs.into_iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        }),
        Err(e) => {
            plan.error = Some(crate::target::one_line(&e));
            return plan;
        }
    };
    match text.as_deref().map(parse) {
        Some(Ok((nodes, exec, jit))) => {
            plan.nodes = nodes;
            plan.execution_ms = exec;
            plan.jit_ms = jit;
        }
        Some(Err(e)) => plan.error = Some(e),
        None => plan.error = Some("EXPLAIN returned no rows".into()),
    }
    plan
}

/// Parses EXPLAIN's JSON into (nodes, execution ms, JIT total ms).
pub fn parse(json: &str) -> Result<(Vec<PlanNode>, f64, Option<f64>), String> {
    let v: Value =
        serde_json::from_str(json).map_err(|e| format!("unreadable EXPLAIN JSON: {e}"))?;
    let top = v.get(0).ok_or("EXPLAIN JSON is not an array")?;
    let root = top.get("Plan").ok_or("EXPLAIN JSON has no Plan")?;
    let mut nodes = Vec::new();
    walk(root, 0, &mut nodes);
    let exec = top
        .get("Execution Time")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let jit = top
        .get("JIT")
        .and_then(|j| j.get("Timing"))
        .and_then(|t| t.get("Total"))
        .and_then(Value::as_f64);
    Ok((nodes, exec, jit))
}

fn walk(n: &Value, depth: usize, out: &mut Vec<PlanNode>) {
    let s = |k: &str| n.get(k).and_then(Value::as_str).map(str::to_string);
    let f = |k: &str| n.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let relation = s("Relation Name").map(|r| match s("Schema") {
        Some(schema) => format!("{schema}.{r}"),
        None => r,
    });
    out.push(PlanNode {
        depth,
        node_type: s("Node Type").unwrap_or_default(),
        relation,
        index: s("Index Name"),
        filter: s("Filter"),
        index_cond: s("Index Cond").or_else(|| s("Recheck Cond")),
        plan_rows: f("Plan Rows"),
        actual_rows: f("Actual Rows"),
        loops: f("Actual Loops"),
        removed_by_filter: f("Rows Removed by Filter"),
        sort_method: s("Sort Method"),
        sort_space_type: s("Sort Space Type"),
        sort_space_kb: f("Sort Space Used"),
        // A hash join's Hash node says `Hash Batches`, a HashAggregate `HashAgg Batches`.
        hash_batches: f("Hash Batches").max(f("HashAgg Batches")) as i64,
        peak_memory_kb: f("Peak Memory Usage").max(f("Disk Usage")),
        temp_written_blocks: f("Temp Written Blocks") as i64,
        group_key: n
            .get("Group Key")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    });
    if let Some(children) = n.get("Plans").and_then(Value::as_array) {
        for c in children {
            walk(c, depth + 1, out);
        }
    }
}

/// The columns of `columns` that `filter` compares, equality comparisons first (they make the
/// best leading index columns), each once, in order of appearance otherwise. Quoted literals are
/// skipped so a value never passes for a column.
pub fn filter_columns(filter: &str, columns: &[String]) -> Vec<String> {
    let b = filter.as_bytes();
    let mut eq = Vec::new();
    let mut other = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let word = &filter[start..i];
            // A qualifier (`alias.`) is not a column.
            if b.get(i) == Some(&b'.') {
                continue;
            }
            if let Some(col) = columns.iter().find(|c| c.as_str() == word) {
                let mut j = i;
                while j < b.len() && (b[j] == b' ' || b[j] == b')') {
                    j += 1;
                }
                let is_eq = b.get(j) == Some(&b'=') && b.get(j + 1) != Some(&b'>');
                if !eq.contains(col) && !other.contains(col) {
                    if is_eq {
                        eq.push(col.clone());
                    } else {
                        other.push(col.clone());
                    }
                } else if is_eq && other.contains(col) {
                    other.retain(|o| o != col);
                    eq.push(col.clone());
                }
            }
            continue;
        }
        i += 1;
    }
    eq.extend(other);
    eq
}

/// `expr` without relation qualifiers (`pos_order.create_date` → `create_date`), as CREATE
/// STATISTICS wants it; quoted literals are left alone.
pub fn unqualify(expr: &str) -> String {
    let b = expr.as_bytes();
    let mut out = String::with_capacity(expr.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\'' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i = (i + 1).min(b.len());
            out.push_str(&expr[start..i]);
            continue;
        }
        if b[i].is_ascii_alphabetic() || b[i] == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            if b.get(i) == Some(&b'.')
                && b.get(i + 1)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
            {
                i += 1;
            } else {
                out.push_str(&expr[start..i]);
            }
            continue;
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn filter_columns_skip_literals_and_qualifiers_and_put_equality_first() {
        let c = cols(&["id", "partner_id", "create_date", "state"]);
        let f = "((pos_order.create_date >= '2025-12-16 12:00:00+00'::timestamp with time zone) \
                 AND (pos_order.create_date < ('2025-12-16 12:00:00+00'::timestamp with time zone \
                 + '01:00:00'::interval)))";
        assert_eq!(filter_columns(f, &c), cols(&["create_date"]));
        let f = "((o.create_date > now()) AND (o.partner_id = '5'::bigint) AND (note = 'state'))";
        assert_eq!(filter_columns(f, &c), cols(&["partner_id", "create_date"]));
    }

    #[test]
    fn qualifiers_are_stripped_but_literals_kept() {
        assert_eq!(
            unqualify("date_trunc('day'::text, pos_order.create_date)"),
            "date_trunc('day'::text, create_date)"
        );
        assert_eq!(
            unqualify("(o.amount_total * '1.5'::numeric)"),
            "(amount_total * '1.5'::numeric)"
        );
    }

    #[test]
    fn parses_a_spilling_sort_and_a_seq_scan() {
        let json = r#"[{"Plan": {"Node Type": "Sort", "Actual Rows": 100, "Actual Loops": 1,
            "Plan Rows": 100, "Sort Method": "external merge", "Sort Space Used": 1200,
            "Sort Space Type": "Disk", "Temp Written Blocks": 150,
            "Plans": [{"Node Type": "Seq Scan", "Relation Name": "pos_order", "Schema": "pgstorm",
              "Filter": "(amount_total > 1)", "Actual Rows": 100, "Actual Loops": 1,
              "Plan Rows": 5000, "Rows Removed by Filter": 9900}]},
            "Execution Time": 12.5}]"#;
        let (nodes, exec, jit) = parse(json).unwrap();
        assert_eq!(exec, 12.5);
        assert_eq!(jit, None);
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].sort_space_type.as_deref(), Some("Disk"));
        assert_eq!(nodes[1].relation.as_deref(), Some("pgstorm.pos_order"));
        assert_eq!(nodes[1].rows_scanned(), 10_000.0);
        assert_eq!(nodes[1].depth, 1);
    }
}
