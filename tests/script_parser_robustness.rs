//! Robustness of the script parser and the expression evaluator: no input may panic.
//!
//! Two sources of input: the kept corpus (tests/corpus/scripts/*.sql: pgbench's scripts, tricky
//! valid scripts, and inputs that once broke a parser), each parsed and, when it parses, every
//! expression evaluated; and a property test that generates thousands of scripts from a grammar of
//! the pieces that matter (backslashes, quotes, dollar quotes, comments, colons, operators,
//! functions, huge numbers, unicode) with the project's seeded Rng, so a failure is reproducible
//! from its seed. Errors are fine; panics, hangs and line numbers outside the input are not.

use std::path::Path;

use pgstorm::rng::Rng;
use pgstorm::workload::script::expr::{self, Env};
use pgstorm::workload::script::parse::{self, Step};
use pgstorm::workload::script::prng::PgPrng;
use pgstorm::workload::script::vars::Slot;

/// Parses `src`; when it parses, evaluates every expression with every variable set to a value
/// (so evaluation paths run too). Returns whether it parsed.
fn exercise(src: &str, seed: u64) -> bool {
    let lines = src.split('\n').count();
    match parse::parse(src) {
        Err(e) => {
            assert!(
                e.line >= 1 && e.line <= lines.max(1),
                "line {} outside 1..={lines} for {src:?}: {}",
                e.line,
                e.msg
            );
            false
        }
        Ok(c) => {
            let mut rng = Rng::new(seed);
            let mut slots = vec![Slot::default(); c.vars.len()];
            for (i, s) in slots.iter_mut().enumerate() {
                match i % 4 {
                    0 => s.set_val(expr::Val::Int(rng.next_u64() as i64)),
                    1 => s.set_val(expr::Val::Double(rng.next_f64() * 1e6 - 5e5)),
                    2 => s.set_text("12"),
                    _ => s.set_text("not a number"),
                }
            }
            let mut script_rng = PgPrng::new(seed);
            for cmd in &c.commands {
                let e = match &cmd.step {
                    Step::Set { expr, .. } | Step::Branch { cond: expr, .. } => expr,
                    _ => continue,
                };
                let mut env = Env {
                    vars: &slots,
                    rng: &mut script_rng,
                    names: c.vars.names(),
                    origin: ("robustness", 1),
                };
                let _ = expr::eval(e, &mut env);
            }
            true
        }
    }
}

#[test]
fn the_kept_corpus_never_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/scripts");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let src = String::from_utf8_lossy(&bytes);
        let parsed = exercise(&src, n);
        // Files named valid_* must parse; the others may fail, but cleanly.
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("valid_") {
            assert!(
                parsed,
                "{name} should parse: {:?}",
                parse::parse(&src).err()
            );
        }
        n += 1;
    }
    assert!(n >= 5, "corpus missing: {}", dir.display());
}

/// Pieces a generated script is built from.
const PIECES: &[&str] = &[
    "\\set ",
    "\\set x ",
    "\\set y ",
    "\\if ",
    "\\elif ",
    "\\else",
    "\\endif",
    "\\gset",
    "\\gset p_",
    "\\sleep ",
    "\\sleep :x ms",
    "\\shell",
    "\\",
    "\\;",
    "\\:",
    "SELECT ",
    "BEGIN;",
    "END;",
    ";",
    "\n",
    "\n",
    " ",
    "\\\n",
    "'",
    "''",
    "E'\\''",
    "\"",
    "$$",
    "$t$",
    "$1",
    "--",
    "/*",
    "*/",
    "(",
    ")",
    ",",
    ":",
    "::",
    ":x",
    ":y",
    ":p_a",
    ":scale",
    "x",
    "1",
    "0",
    "-",
    "+",
    "*",
    "/",
    "%",
    "<<",
    ">>",
    "&",
    "|",
    "#",
    "~",
    "=",
    "<>",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "AND ",
    "OR ",
    "NOT ",
    "IS ",
    "NULL",
    "TRUE",
    "false",
    "ISNULL",
    "CASE ",
    "WHEN ",
    "THEN ",
    "ELSE ",
    "END",
    "1.5",
    "1e308",
    "1e",
    ".5",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999",
    "random(",
    "random_zipfian(",
    "random_gaussian(",
    "random_exponential(",
    "permute(",
    "hash(",
    "hash_fnv1a(",
    "hash_murmur2(",
    "abs(",
    "int(",
    "double(",
    "greatest(",
    "least(",
    "pow(",
    "mod(",
    "sqrt(",
    "ln(",
    "exp(",
    "pi()",
    "nosuch(",
    "é",
    "日本",
    "\u{0}",
    "\r\n",
    "\t",
];

fn generate(rng: &mut Rng) -> String {
    let len = rng.range_i64(0, 40) as usize;
    let mut s = String::new();
    for _ in 0..len {
        s.push_str(PIECES[rng.range_i64(0, PIECES.len() as i64 - 1) as usize]);
    }
    s
}

/// Well-formed `\set` lines with random operators and operands: these mostly parse, so the
/// evaluator sees many combinations of types, overflow and division by zero.
fn generate_expression(rng: &mut Rng, depth: u32) -> String {
    const ATOMS: &[&str] = &[
        "0",
        "1",
        "-1",
        "2.5",
        "9223372036854775807",
        "-9223372036854775808",
        ":x",
        ":y",
        "null",
        "true",
        "false",
        "pi()",
    ];
    const OPS: &[&str] = &[
        "+", "-", "*", "/", "%", "<<", ">>", "&", "|", "#", "=", "<>", "<", ">=", "AND", "OR",
    ];
    const FUNCS: &[&str] = &[
        "abs",
        "int",
        "double",
        "sqrt",
        "ln",
        "exp",
        "greatest",
        "least",
        "hash",
        "hash_fnv1a",
    ];
    match if depth > 4 { 0 } else { rng.range_i64(0, 4) } {
        0 => ATOMS[rng.range_i64(0, ATOMS.len() as i64 - 1) as usize].to_string(),
        1 => format!(
            "({} {} {})",
            generate_expression(rng, depth + 1),
            OPS[rng.range_i64(0, OPS.len() as i64 - 1) as usize],
            generate_expression(rng, depth + 1)
        ),
        2 => format!(
            "{}({})",
            FUNCS[rng.range_i64(0, FUNCS.len() as i64 - 1) as usize],
            generate_expression(rng, depth + 1)
        ),
        3 => format!(
            "random({}, {})",
            generate_expression(rng, depth + 1),
            generate_expression(rng, depth + 1)
        ),
        _ => format!(
            "CASE WHEN {} THEN {} ELSE {} END",
            generate_expression(rng, depth + 1),
            generate_expression(rng, depth + 1),
            generate_expression(rng, depth + 1)
        ),
    }
}

#[test]
fn generated_scripts_never_panic() {
    let mut parsed = 0;
    for seed in 0..20_000u64 {
        let mut rng = Rng::new(seed);
        let src = generate(&mut rng);
        let ok = std::panic::catch_unwind(|| exercise(&src, seed))
            .unwrap_or_else(|_| panic!("seed {seed} panicked on {src:?}"));
        parsed += ok as u32;
    }
    // The generator must reach past the first error often enough to test anything.
    assert!(parsed > 500, "only {parsed} generated scripts parsed");
}

#[test]
fn generated_expressions_never_panic() {
    let mut evaluated = 0;
    for seed in 0..20_000u64 {
        let mut rng = Rng::new(seed);
        let src = format!(
            "\\set x {}\n\\set y {}\n\\if {}\nSELECT :x;\n\\endif\n",
            generate_expression(&mut rng, 0),
            generate_expression(&mut rng, 0),
            generate_expression(&mut rng, 0)
        );
        let ok = std::panic::catch_unwind(|| exercise(&src, seed))
            .unwrap_or_else(|_| panic!("seed {seed} panicked on {src:?}"));
        evaluated += ok as u32;
    }
    assert!(evaluated > 15_000, "only {evaluated} expressions parsed");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("\\set x {}1{}\n", "(".repeat(100_000), ")".repeat(100_000));
    assert!(parse::parse(&deep).is_err());
    let neg = format!("\\set x {}1\n", "-".repeat(100_000));
    assert!(parse::parse(&neg).is_err());
    let nots = format!("\\set x {}1\n", "NOT ".repeat(100_000));
    assert!(parse::parse(&nots).is_err());
}
