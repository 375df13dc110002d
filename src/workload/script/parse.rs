//! Splits a pgbench script into SQL commands and meta-commands, and compiles them.
//!
//! Follows pgbench's script rules: an SQL command ends at a `;` outside quotes, comments and
//! parentheses and may span lines; a backslash outside quotes starts a meta-command that runs to
//! the end of the line (a trailing backslash continues it); `\gset` takes the place of the `;` of
//! the SQL command before it, and so does `\aset`. `:name` in SQL becomes a bind parameter (`$n`, one per occurrence,
//! as pgbench does, even inside literals). Meta-commands pgstorm does not implement are an error
//! naming the line, never skipped. `\if` blocks compile to jumps so execution needs no stack.

use super::expr::{self, Expr};
use super::vars::VarTable;

/// Most bind parameters of one SQL command (pgbench's MAX_ARGS - 1).
pub const MAX_PARAMS: usize = 255;

/// A parse error at a line of the script.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

/// The argument of `\sleep`.
#[derive(Debug, Clone, PartialEq)]
pub enum SleepArg {
    /// A constant.
    Const(i64),
    /// A variable slot.
    Var(usize),
}

/// One executable step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// An SQL command: `stmt` indexes [`Compiled::statements`].
    Sql {
        /// Index of the statement (prepared SQL) of this command.
        stmt: usize,
        /// Text pieces around the variables: `pieces[0] var[0] pieces[1] ... pieces[n]`.
        pieces: Vec<String>,
        /// Variable slot of each parameter, in order.
        params: Vec<usize>,
        /// `\gset`/`\aset` prefix, when the command stores its result.
        gset: Option<String>,
        /// `\aset` rather than `\gset`: every non-empty result of a compound command is stored
        /// (its last row), not only the last result (which must have exactly one row).
        aset: bool,
    },
    /// `\startpipeline`: the SQL commands up to `\endpipeline` are sent without waiting.
    StartPipeline,
    /// `\endpipeline`: one Sync for the pipeline, then every reply is read.
    EndPipeline,
    /// `\set var expr`.
    Set {
        /// Target slot.
        slot: usize,
        /// Value.
        expr: Expr,
    },
    /// `\sleep n [us|ms|s]`.
    Sleep {
        /// Amount.
        arg: SleepArg,
        /// Microseconds per unit.
        unit_us: i64,
    },
    /// `\if` / `\elif`: go to `target` when `cond` is false (or NULL).
    Branch {
        /// Condition.
        cond: Expr,
        /// Step to continue at when false.
        target: usize,
    },
    /// End of a taken branch: go to the `\endif`.
    Jump(usize),
}

/// A compiled step with its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// What to do.
    pub step: Step,
    /// Line where it starts.
    pub line: usize,
    /// Index of its per-command statistics, `None` for internal jumps.
    pub stat: Option<usize>,
}

/// A parsed script.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// Steps in order.
    pub commands: Vec<Command>,
    /// Prepared-protocol SQL of each SQL command.
    pub statements: Vec<String>,
    /// Label of each statistics index (line and text, as pgbench -r prints them).
    pub labels: Vec<String>,
    /// The variables.
    pub vars: VarTable,
}

fn err(line: usize, msg: impl Into<String>) -> ParseError {
    ParseError {
        line,
        msg: msg.into(),
    }
}

/// Meta-commands pgbench has and pgstorm does not run.
const UNSUPPORTED: [&str; 3] = ["setshell", "shell", "close"];

/// The meta-commands pgstorm runs, for messages.
const SUPPORTED: &str =
    "\\set, \\sleep, \\gset, \\aset, \\if, \\elif, \\else, \\endif, \\startpipeline, \\endpipeline";

struct Builder {
    out: Compiled,
    /// Open `\if` blocks: (line of \if, pending false-branch step, jumps to patch, saw \else).
    blocks: Vec<(usize, Option<usize>, Vec<usize>, bool)>,
}

impl Builder {
    fn push(&mut self, step: Step, line: usize, label: Option<String>) {
        let stat = label.map(|l| {
            self.out.labels.push(l);
            self.out.labels.len() - 1
        });
        self.out.commands.push(Command { step, line, stat });
    }

    fn sql(
        &mut self,
        text: &str,
        line: usize,
        gset: Option<String>,
        aset: bool,
    ) -> Result<(), ParseError> {
        let (pieces, names) = split_variables(text);
        if names.len() > MAX_PARAMS {
            return Err(err(
                line,
                format!(
                    "SQL command has {} variables; at most {MAX_PARAMS} are allowed",
                    names.len()
                ),
            ));
        }
        let params: Vec<usize> = names.iter().map(|n| self.out.vars.slot(n)).collect();
        let mut prepared = String::with_capacity(text.len());
        for (i, p) in pieces.iter().enumerate() {
            prepared.push_str(p);
            if i < params.len() {
                prepared.push_str(&format!("${}", i + 1));
            }
        }
        let stmt = self.out.statements.len();
        self.out.statements.push(prepared);
        self.push(
            Step::Sql {
                stmt,
                pieces,
                params,
                gset,
                aset,
            },
            line,
            Some(label(line, text)),
        );
        Ok(())
    }

    fn meta(&mut self, name: &str, args: &str, line: usize) -> Result<(), ParseError> {
        let lname = name.to_ascii_lowercase();
        let label = Some(label(line, &format!("\\{name} {args}")));
        match lname.as_str() {
            "set" => {
                let args = args.trim();
                let (var, rest) =
                    args.split_once(|c: char| c.is_whitespace())
                        .ok_or_else(|| {
                            err(
                                line,
                                "syntax error: \\set needs a variable name and an expression",
                            )
                        })?;
                if !valid_name(var) {
                    return Err(err(line, format!("invalid variable name '{var}'")));
                }
                let slot = self.out.vars.slot(var);
                let expr = expr::parse(rest, &mut self.out.vars)
                    .map_err(|m| err(line, format!("\\set {var}: {m}")))?;
                self.push(Step::Set { slot, expr }, line, label);
            }
            "sleep" => {
                let args: Vec<&str> = args.split_whitespace().collect();
                let (amount, mut unit) = match args[..] {
                    [] => return Err(err(line, "\\sleep: missing argument")),
                    [a] => (a, None),
                    [a, u] => (a, Some(u)),
                    _ => return Err(err(line, "\\sleep: too many arguments")),
                };
                let arg = if let Some(v) = amount.strip_prefix(':') {
                    if !valid_name(v) {
                        return Err(err(line, format!("invalid variable name '{v}'")));
                    }
                    SleepArg::Var(self.out.vars.slot(v))
                } else {
                    // pgbench: an optional sign and digits, then a unit may follow directly
                    // (`2ms`) when no separate unit is given; the number is read with atoi.
                    let unsigned = amount.strip_prefix(['+', '-']).unwrap_or(amount);
                    let digits = unsigned.len()
                        - unsigned
                            .trim_start_matches(|c: char| c.is_ascii_digit())
                            .len();
                    let rest = &unsigned[digits..];
                    if !rest.is_empty() {
                        if unit.is_some() || digits == 0 {
                            return Err(err(
                                line,
                                format!(
                                    "\\sleep: invalid sleep time, must be an integer ({amount})"
                                ),
                            ));
                        }
                        unit = Some(rest);
                    }
                    let n = unsigned[..digits].bytes().fold(0i64, |n, d| {
                        n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
                    });
                    SleepArg::Const(if amount.starts_with('-') { -n } else { n })
                };
                let unit_us = match unit.map(str::to_ascii_lowercase).as_deref() {
                    None | Some("s") => 1_000_000,
                    Some("ms") => 1_000,
                    Some("us") => 1,
                    Some(_) => {
                        return Err(err(
                            line,
                            format!(
                                "\\sleep: unrecognized time unit, must be us, ms or s ({})",
                                unit.unwrap_or_default()
                            ),
                        ))
                    }
                };
                self.push(Step::Sleep { arg, unit_us }, line, label);
            }
            "if" => {
                let cond = expr::parse(args, &mut self.out.vars)
                    .map_err(|m| err(line, format!("\\if: {m}")))?;
                let at = self.out.commands.len();
                self.push(Step::Branch { cond, target: 0 }, line, label);
                self.blocks.push((line, Some(at), Vec::new(), false));
            }
            "elif" => {
                let cond = expr::parse(args, &mut self.out.vars)
                    .map_err(|m| err(line, format!("\\elif: {m}")))?;
                let jump = self.out.commands.len();
                self.push(Step::Jump(0), line, None);
                let branch = self.out.commands.len();
                let (_, pending, jumps, seen_else) = self
                    .blocks
                    .last_mut()
                    .ok_or_else(|| err(line, "\\elif without matching \\if"))?;
                if *seen_else {
                    return Err(err(line, "\\elif after \\else"));
                }
                jumps.push(jump);
                let prev = pending.replace(branch);
                self.patch(prev, branch);
                self.push(Step::Branch { cond, target: 0 }, line, label);
            }
            "else" => {
                no_args(name, args, line)?;
                let jump = self.out.commands.len();
                self.push(Step::Jump(0), line, None);
                let next = self.out.commands.len();
                let (_, pending, jumps, seen_else) = self
                    .blocks
                    .last_mut()
                    .ok_or_else(|| err(line, "\\else without matching \\if"))?;
                if *seen_else {
                    return Err(err(line, "a second \\else in the same \\if"));
                }
                *seen_else = true;
                jumps.push(jump);
                let prev = pending.take();
                self.patch(prev, next);
            }
            "endif" => {
                no_args(name, args, line)?;
                let (_, pending, jumps, _) = self
                    .blocks
                    .pop()
                    .ok_or_else(|| err(line, "\\endif without matching \\if"))?;
                let end = self.out.commands.len();
                self.patch(pending, end);
                for j in jumps {
                    self.out.commands[j].step = Step::Jump(end);
                }
            }
            "gset" | "aset" => {
                return Err(err(line, format!("\\{lname} must follow an SQL command")))
            }
            "startpipeline" => {
                no_args(name, args, line)?;
                self.push(Step::StartPipeline, line, label);
            }
            "endpipeline" => {
                no_args(name, args, line)?;
                self.push(Step::EndPipeline, line, label);
            }
            "syncpipeline" => {
                return Err(err(
                    line,
                    "\\syncpipeline is a command of PostgreSQL 17's pgbench; pgstorm follows \
                     pgbench 15, which has \\startpipeline and \\endpipeline: end the pipeline \
                     and start a new one instead",
                ))
            }
            n if UNSUPPORTED.contains(&n) => {
                return Err(err(
                    line,
                    format!(
                        "meta-command \\{name} is not supported by pgstorm; supported: {SUPPORTED}"
                    ),
                ))
            }
            _ => {
                return Err(err(
                    line,
                    format!(
                        "invalid command \\{name}: unknown meta-command; supported: {SUPPORTED}"
                    ),
                ))
            }
        }
        Ok(())
    }

    fn patch(&mut self, branch: Option<usize>, target: usize) {
        if let Some(b) = branch {
            if let Step::Branch { target: t, .. } = &mut self.out.commands[b].step {
                *t = target;
            }
        }
    }
}

fn no_args(name: &str, args: &str, line: usize) -> Result<(), ParseError> {
    if args.trim().is_empty() {
        Ok(())
    } else {
        Err(err(line, format!("\\{name} takes no argument")))
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(is_name_byte)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// `"12: SELECT ..."`: the line and the command on one line, shortened.
fn label(line: usize, text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let short: String = flat.chars().take(80).collect();
    format!("{line}: {short}")
}

/// pgbench's parseQuery: splits `sql` at each `:name` (not `::`), returning the text pieces and
/// the variable names in order.
pub fn split_variables(sql: &str) -> (Vec<String>, Vec<String>) {
    let b = sql.as_bytes();
    let mut pieces = Vec::new();
    let mut names = Vec::new();
    let mut last = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b':' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < b.len() && is_name_byte(b[j]) {
            j += 1;
        }
        if j == i + 1 {
            // Not a variable (e.g. a `::` cast): skip the run of colons.
            while i < b.len() && b[i] == b':' {
                i += 1;
            }
            continue;
        }
        pieces.push(sql[last..i].to_string());
        names.push(sql[i + 1..j].to_string());
        last = j;
        i = j;
    }
    pieces.push(sql[last..].to_string());
    (pieces, names)
}

/// Parses a whole script.
pub fn parse(src: &str) -> Result<Compiled, ParseError> {
    let mut b = Builder {
        out: Compiled::default(),
        blocks: Vec::new(),
    };
    let s = src.as_bytes();
    let mut i = 0;
    let mut line = 1;
    let mut sql = String::new();
    let mut sql_line = 1;
    let mut has_content = false;
    let mut depth: i32 = 0;
    // Finishes the pending SQL command (if it has content).
    macro_rules! flush_sql {
        ($gset:expr, $aset:expr) => {{
            if has_content {
                b.sql(sql.trim(), sql_line, $gset, $aset)?;
            }
            sql.clear();
            has_content = false;
            depth = 0;
        }};
    }
    while i < s.len() {
        let c = s[i];
        let (had_content, line_before) = (has_content, line);
        match c {
            b'\n' => {
                line += 1;
                sql.push('\n');
                i += 1;
            }
            b'-' if s.get(i + 1) == Some(&b'-') => {
                let end = s[i..]
                    .iter()
                    .position(|&x| x == b'\n')
                    .map_or(s.len(), |p| i + p);
                sql.push_str(&src[i..end]);
                i = end;
            }
            b'/' if s.get(i + 1) == Some(&b'*') => {
                let start = i;
                let start_line = line;
                let mut nest = 0;
                loop {
                    if i >= s.len() {
                        return Err(err(start_line, "unterminated /* comment"));
                    }
                    if s[i] == b'/' && s.get(i + 1) == Some(&b'*') {
                        nest += 1;
                        i += 2;
                    } else if s[i] == b'*' && s.get(i + 1) == Some(&b'/') {
                        nest -= 1;
                        i += 2;
                        if nest == 0 {
                            break;
                        }
                    } else {
                        if s[i] == b'\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
                sql.push_str(&src[start..i]);
            }
            b'\'' | b'"' => {
                let start = i;
                let start_line = line;
                let escapes = c == b'\''
                    && i > 0
                    && (s[i - 1] == b'E' || s[i - 1] == b'e')
                    && (i < 2 || !is_name_byte(s[i - 2]));
                i += 1;
                loop {
                    if i >= s.len() {
                        let what = if c == b'"' { "identifier" } else { "string" };
                        return Err(err(start_line, format!("unterminated quoted {what}")));
                    }
                    let x = s[i];
                    if x == b'\n' {
                        line += 1;
                    }
                    if escapes && x == b'\\' {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    if x == c {
                        if s.get(i) == Some(&c) {
                            i += 1;
                            continue;
                        }
                        break;
                    }
                }
                let end = i.min(s.len());
                sql.push_str(&src[start..end]);
                i = end;
                has_content = true;
            }
            b'$' if dollar_tag(s, i).is_some() => {
                let tag_len = dollar_tag(s, i).unwrap_or(0);
                let tag = &src[i..i + tag_len];
                let start_line = line;
                let body = i + tag_len;
                let close = src[body..].find(tag).ok_or_else(|| {
                    err(
                        start_line,
                        format!("unterminated dollar-quoted string {tag}"),
                    )
                })?;
                let end = body + close + tag_len;
                line += src[i..end].bytes().filter(|&x| x == b'\n').count();
                sql.push_str(&src[i..end]);
                i = end;
                has_content = true;
            }
            b'(' => {
                depth += 1;
                sql.push('(');
                i += 1;
                has_content = true;
            }
            b')' => {
                depth -= 1;
                sql.push(')');
                i += 1;
                has_content = true;
            }
            b';' if depth <= 0 => {
                flush_sql!(None::<String>, false);
                i += 1;
            }
            b'\\' if matches!(s.get(i + 1), Some(b';') | Some(b':')) => {
                // pgbench passes `\;` and `\:` through into the query text.
                sql.push(s[i + 1] as char);
                i += 2;
                has_content = true;
            }
            b'\\' => {
                let meta_line = line;
                let mut j = i + 1;
                while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_') {
                    j += 1;
                }
                let name = &src[i + 1..j];
                if name.is_empty() {
                    return Err(err(
                        line,
                        "a backslash must start a meta-command such as \\set",
                    ));
                }
                // Arguments run to the end of the line; a trailing backslash continues them.
                let mut args = String::new();
                loop {
                    let end = s[j..]
                        .iter()
                        .position(|&x| x == b'\n')
                        .map_or(s.len(), |p| j + p);
                    let part = src[j..end].trim_end_matches('\r');
                    if let Some(cont) = part.strip_suffix('\\') {
                        args.push_str(cont);
                        args.push(' ');
                        if end < s.len() {
                            line += 1;
                        }
                        j = (end + 1).min(s.len());
                        if end >= s.len() {
                            break;
                        }
                    } else {
                        args.push_str(part);
                        j = end;
                        break;
                    }
                }
                i = j;
                let aset = name.eq_ignore_ascii_case("aset");
                if aset || name.eq_ignore_ascii_case("gset") {
                    let lname = name.to_ascii_lowercase();
                    let prefix = args.trim();
                    if !prefix.is_empty() && !valid_name(prefix) {
                        return Err(err(
                            meta_line,
                            format!("invalid \\{lname} prefix '{prefix}'"),
                        ));
                    }
                    let prefix = Some(prefix.to_string());
                    if !has_content {
                        return Err(err(
                            meta_line,
                            format!("\\{lname} must follow an SQL command"),
                        ));
                    }
                    flush_sql!(prefix, aset);
                } else {
                    flush_sql!(None::<String>, false);
                    b.meta(name, &args, meta_line)?;
                }
            }
            _ => {
                // Copy the whole UTF-8 character.
                let ch_len = src[i..].chars().next().map_or(1, char::len_utf8);
                sql.push_str(&src[i..i + ch_len]);
                if !c.is_ascii_whitespace() {
                    has_content = true;
                }
                i += ch_len;
            }
        }
        if !had_content && has_content {
            sql_line = line_before;
        }
    }
    flush_sql!(None::<String>, false);
    // The macro resets the scanner state; after the last command nothing reads it.
    let _ = (has_content, depth);
    if let Some((if_line, ..)) = b.blocks.last() {
        return Err(err(*if_line, "\\if without matching \\endif"));
    }
    if b.out.commands.is_empty() {
        return Err(err(1, "the script has no command"));
    }
    Ok(b.out)
}

/// Length of a `$tag$` opening at `i`, if there is one (`$1` is a parameter, not a tag).
fn dollar_tag(s: &[u8], i: usize) -> Option<usize> {
    if i > 0 && is_name_byte(s[i - 1]) {
        return None;
    }
    let mut j = i + 1;
    if j < s.len() && s[j].is_ascii_digit() {
        return None;
    }
    while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_' || s[j] >= 0x80) {
        j += 1;
    }
    (j < s.len() && s[j] == b'$').then_some(j + 1 - i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_spans_lines_and_splits_at_semicolons_outside_quotes() {
        let c = parse("SELECT ';' ,\n  (1;2)\n;\nSELECT $$a;b$$;  -- c;\n").unwrap();
        assert_eq!(c.statements.len(), 2);
        assert_eq!(c.statements[0], "SELECT ';' ,\n  (1;2)");
        assert_eq!(c.statements[1], "SELECT $$a;b$$");
        assert_eq!(c.commands[1].line, 4);
    }

    #[test]
    fn variables_become_numbered_parameters_and_casts_stay() {
        let c = parse("\\set aid 1\nSELECT :aid::int + :aid, 'x::y'").unwrap();
        assert_eq!(c.statements[0], "SELECT $1::int + $2, 'x::y'");
        let Step::Sql { params, .. } = &c.commands[1].step else {
            panic!()
        };
        assert_eq!(params, &vec![c.vars.get("aid").unwrap(); 2]);
    }

    #[test]
    fn gset_ends_the_command_and_if_blocks_compile_to_jumps() {
        let src = "SELECT 1 AS one \\gset p_\n\\if :p_one = 1\n\\set x 1\n\\elif false\n\\set x 2\n\\else\n\\set x 3\n\\endif\n";
        let c = parse(src).unwrap();
        let Step::Sql { gset, .. } = &c.commands[0].step else {
            panic!()
        };
        assert_eq!(gset.as_deref(), Some("p_"));
        // 0 sql, 1 branch, 2 set, 3 jump, 4 branch, 5 set, 6 jump, 7 set; end = 8.
        assert_eq!(c.commands.len(), 8);
        assert!(matches!(c.commands[1].step, Step::Branch { target: 4, .. }));
        assert!(matches!(c.commands[3].step, Step::Jump(8)));
        assert!(matches!(c.commands[4].step, Step::Branch { target: 7, .. }));
        assert!(matches!(c.commands[6].step, Step::Jump(8)));
    }

    #[test]
    fn sleep_takes_its_unit_attached_or_apart_as_pgbench() {
        let sleeps = |src: &str| -> Vec<(i64, i64)> {
            parse(src)
                .unwrap()
                .commands
                .iter()
                .filter_map(|c| match c.step {
                    Step::Sleep {
                        arg: SleepArg::Const(n),
                        unit_us,
                    } => Some((n, unit_us)),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(
            sleeps("\\sleep 2ms\n\\sleep 3 us\n\\sleep 4\n\\sleep 5s\n\\sleep -1 ms\n"),
            [
                (2, 1_000),
                (3, 1),
                (4, 1_000_000),
                (5, 1_000_000),
                (-1, 1_000)
            ]
        );
        for (bad, msg) in [
            (
                "\\sleep 2 hours",
                "unrecognized time unit, must be us, ms or s (hours)",
            ),
            (
                "\\sleep 2hours",
                "unrecognized time unit, must be us, ms or s (hours)",
            ),
            ("\\sleep ms", "invalid sleep time, must be an integer (ms)"),
            (
                "\\sleep 2ms ms",
                "invalid sleep time, must be an integer (2ms)",
            ),
            ("\\sleep", "missing argument"),
            ("\\sleep 1 ms 2", "too many arguments"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.msg.contains(msg), "{bad}: {}", e.msg);
        }
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("SELECT 1;\n\n\\shell ls\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.msg.contains("\\shell"), "{}", e.msg);
        let e = parse("SELECT 1;\n\\frobnicate now\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.msg.contains("unknown meta-command"));
        assert_eq!(parse("\\if true\nSELECT 1;\n").unwrap_err().line, 1);
        assert_eq!(parse("SELECT 1;\n\\endif\n").unwrap_err().line, 2);
        assert_eq!(parse("\n\\gset\n").unwrap_err().line, 2);
        assert_eq!(parse("\\set x 1 +\n").unwrap_err().line, 1);
        assert_eq!(parse("SELECT 'abc\n").unwrap_err().line, 1);
        assert!(parse("").is_err());
    }

    #[test]
    fn aset_and_pipeline_commands_compile_and_syncpipeline_is_refused() {
        let c = parse(
            "SELECT 1 AS a \\; SELECT 2 AS b \\aset p_\n\\startpipeline\nSELECT 1;\n\\endpipeline\n",
        )
        .unwrap();
        let Step::Sql { gset, aset, .. } = &c.commands[0].step else {
            panic!()
        };
        assert_eq!((gset.as_deref(), *aset), (Some("p_"), true));
        assert_eq!(c.statements[0], "SELECT 1 AS a ; SELECT 2 AS b");
        assert_eq!(c.commands[1].step, Step::StartPipeline);
        assert!(matches!(c.commands[2].step, Step::Sql { aset: false, .. }));
        assert_eq!(c.commands[3].step, Step::EndPipeline);
        let e = parse("\\startpipeline\nSELECT 1;\n\\syncpipeline\n\\endpipeline\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.msg.contains("PostgreSQL 17"), "{}", e.msg);
        assert_eq!(parse("\n\\aset\n").unwrap_err().line, 2);
        assert_eq!(parse("\\endpipeline now\n").unwrap_err().line, 1);
    }

    #[test]
    fn meta_commands_continue_over_a_trailing_backslash() {
        let c = parse("\\set x 1 + \\\n  2\nSELECT :x;").unwrap();
        assert_eq!(c.commands.len(), 2);
        assert_eq!(c.commands[1].line, 3);
    }
}
