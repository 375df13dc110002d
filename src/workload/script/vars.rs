//! Script variables: names resolved to slots at parse time, values kept per client.
//!
//! A [`Slot`] holds either a typed value (from `\set`) or text (from `\gset` or a predefined
//! string), like pgbench's PgBenchValue/svalue pair. Its text buffer is reused, so assigning and
//! binding a variable does not allocate once the buffer has grown to its working size.

use std::collections::HashMap;

use super::expr::{EvalError, Val};

/// Names → slot indices, built while parsing.
#[derive(Debug, Default, Clone)]
pub struct VarTable {
    index: HashMap<String, usize>,
    names: Vec<String>,
}

impl VarTable {
    /// The slot of `name`, created on first use.
    pub fn slot(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len();
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }

    /// The slot of `name` if the script mentions it.
    pub fn get(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no variable is used.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Slot names, in index order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// One variable of one client.
#[derive(Debug, Clone, Default)]
pub struct Slot {
    set: bool,
    val: Option<Val>,
    text: String,
}

impl Slot {
    /// Stores a typed value.
    pub fn set_val(&mut self, v: Val) {
        self.set = true;
        self.val = Some(v);
    }

    /// Stores text (copied into the reused buffer).
    pub fn set_text(&mut self, s: &str) {
        self.set = true;
        self.val = None;
        self.text.clear();
        self.text.push_str(s);
    }

    /// Stores text produced by `f` into the reused buffer.
    pub fn set_text_with(&mut self, f: impl FnOnce(&mut String)) {
        self.set = true;
        self.val = None;
        self.text.clear();
        f(&mut self.text);
    }

    /// Whether the variable has a value.
    pub fn is_set(&self) -> bool {
        self.set
    }

    /// The value for an expression: `None` when unset; text is read as pgbench does, and
    /// `name` names the variable in the error when it cannot be.
    pub fn value(&self, name: &str) -> Option<Result<Val, EvalError>> {
        if !self.set {
            return None;
        }
        Some(match self.val {
            Some(v) => Ok(v),
            None => parse_text(&self.text)
                .map_err(|()| format!("malformed variable \"{name}\" value: \"{}\"", self.text)),
        })
    }

    /// The length of a `\sleep :var`, read from the value's text with C's atoi as pgbench does
    /// (leading blanks, a sign, digits; anything else ends the number).
    pub fn sleep_amount(&self) -> i64 {
        let atoi = |t: &str| -> i64 {
            let t = t.trim_start();
            let (neg, digits) = match t.as_bytes().first() {
                Some(b'-') => (true, &t[1..]),
                Some(b'+') => (false, &t[1..]),
                _ => (false, t),
            };
            let n = digits
                .bytes()
                .take_while(u8::is_ascii_digit)
                .fold(0i64, |n, d| {
                    n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
                });
            if neg {
                -n
            } else {
                n
            }
        };
        match self.val {
            None => atoi(&self.text),
            Some(Val::Int(i)) => i,
            Some(Val::Double(d)) => atoi(&format_double(d)),
            Some(Val::Null | Val::Bool(_)) => 0,
        }
    }

    /// Appends the value as text, as pgbench's getVariable renders it for substitution and
    /// binding: NULL is the word `NULL`, a double is `%.15g`.
    pub fn write_text<W: std::fmt::Write>(&self, out: &mut W) {
        let _ = match self.val {
            None => out.write_str(&self.text),
            Some(Val::Null) => out.write_str("NULL"),
            Some(Val::Bool(b)) => out.write_str(if b { "true" } else { "false" }),
            Some(Val::Int(i)) => write!(out, "{i}"),
            Some(Val::Double(d)) => write!(out, "{}", format_double(d)),
        };
    }
}

/// A double as pgbench prints it: C's `%.15g` with PostgreSQL's spellings of the special
/// values (`NaN`, `Infinity`, `-Infinity`).
pub fn format_double(d: f64) -> String {
    const DIGITS: i32 = 15;
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // The exponent %g decides on is the one of the value rounded to 15 significant digits.
    let sci = format!("{:.*e}", (DIGITS - 1) as usize, d);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..DIGITS).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        trim(&format!("{:.*}", (DIGITS - 1 - exp) as usize, d))
    }
}

/// pgbench's makeVariableValue: NULL, a boolean word, an integer, or a double; `Err` when the
/// text is none of them.
fn parse_text(t: &str) -> Result<Val, ()> {
    if t.is_empty() {
        return Err(());
    }
    if t.eq_ignore_ascii_case("null") {
        return Ok(Val::Null);
    }
    if let Some(b) = parse_bool(t) {
        return Ok(Val::Bool(b));
    }
    if is_an_int(t) {
        // strtoint64 allows the leading blanks is_an_int skipped.
        return t.trim_start().parse::<i64>().map(Val::Int).map_err(|_| ());
    }
    // strtod: leading blanks, no trailing text, no overflow.
    let d: f64 = t.trim_start().parse().map_err(|_| ())?;
    if d.is_infinite() && !t.to_ascii_lowercase().contains("inf") {
        return Err(());
    }
    Ok(Val::Double(d))
}

/// pgbench's is_an_int: blanks, an optional sign, digits, and nothing after.
fn is_an_int(t: &str) -> bool {
    let s = t.trim_start();
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The boolean words pgbench accepts: a prefix of true/yes/false/no, on, off, of.
fn parse_bool(s: &str) -> Option<bool> {
    let l = s.len();
    let pre = |w: &str| l <= w.len() && w[..l].eq_ignore_ascii_case(s);
    if pre("true") || pre("yes") || s.eq_ignore_ascii_case("on") {
        Some(true)
    } else if pre("false")
        || pre("no")
        || s.eq_ignore_ascii_case("off")
        || s.eq_ignore_ascii_case("of")
    {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_read_like_pgbench() {
        let mut s = Slot::default();
        assert!(s.value("v").is_none());
        let read = |s: &mut Slot, t: &str| {
            s.set_text(t);
            s.value("v").unwrap()
        };
        assert_eq!(read(&mut s, "42"), Ok(Val::Int(42)));
        assert_eq!(read(&mut s, "1"), Ok(Val::Int(1)));
        assert_eq!(read(&mut s, " -7"), Ok(Val::Int(-7)));
        assert_eq!(read(&mut s, "2.5"), Ok(Val::Double(2.5)));
        assert_eq!(read(&mut s, "yes"), Ok(Val::Bool(true)));
        assert_eq!(read(&mut s, "t"), Ok(Val::Bool(true)));
        assert_eq!(read(&mut s, "off"), Ok(Val::Bool(false)));
        assert_eq!(read(&mut s, "of"), Ok(Val::Bool(false)));
        assert_eq!(read(&mut s, "NULL"), Ok(Val::Null));
        let bad = read(&mut s, "hello").unwrap_err();
        assert_eq!(bad, "malformed variable \"v\" value: \"hello\"");
        assert!(read(&mut s, "").is_err());
        assert!(read(&mut s, "99999999999999999999").is_err());
        s.set_val(Val::Int(-3));
        let mut out = String::new();
        s.write_text(&mut out);
        assert_eq!(out, "-3");
        s.set_val(Val::Null);
        out.clear();
        s.write_text(&mut out);
        assert_eq!(out, "NULL");
    }

    #[test]
    fn doubles_print_as_c_percent_15g() {
        for (d, want) in [
            (0.1 + 0.2, "0.3"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (1e15, "1e+15"),
            (123456789012345.0, "123456789012345"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (std::f64::consts::PI, "3.14159265358979"),
            (1.5e300, "1.5e+300"),
            (-0.0, "-0"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(format_double(d), want, "{d}");
        }
    }
}
