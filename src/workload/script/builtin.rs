//! pgbench's built-in scripts (`-b`), verbatim, so `-b tpcb-like` means what it means to pgbench.

/// Names of the built-in scripts.
pub const NAMES: [&str; 3] = ["tpcb-like", "simple-update", "select-only"];

const TPCB_LIKE: &str = r"\set aid random(1, 100000 * :scale)
\set bid random(1, 1 * :scale)
\set tid random(1, 10 * :scale)
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
";

const SIMPLE_UPDATE: &str = r"\set aid random(1, 100000 * :scale)
\set bid random(1, 1 * :scale)
\set tid random(1, 10 * :scale)
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
";

const SELECT_ONLY: &str = r"\set aid random(1, 100000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
";

/// The full name and text of the built-in script `name`, which may be a unique prefix (as pgbench
/// accepts `-b select`).
pub fn lookup(name: &str) -> Option<(&'static str, &'static str)> {
    let hits: Vec<&str> = NAMES
        .iter()
        .copied()
        .filter(|n| n.starts_with(name) && !name.is_empty())
        .collect();
    let full = match hits.as_slice() {
        [one] => *one,
        _ => NAMES.iter().copied().find(|n| *n == name)?,
    };
    Some((
        full,
        match full {
            "tpcb-like" => TPCB_LIKE,
            "simple-update" => SIMPLE_UPDATE,
            _ => SELECT_ONLY,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_prefixes_resolve() {
        for n in NAMES {
            let (full, text) = lookup(n).unwrap();
            assert_eq!(full, n);
            crate::workload::script::parse::parse(text).unwrap();
        }
        assert_eq!(lookup("select").unwrap().0, "select-only");
        assert_eq!(lookup("tpcb").unwrap().0, "tpcb-like");
        assert!(lookup("s").is_none());
        assert!(lookup("nope").is_none());
    }
}
