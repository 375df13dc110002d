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

    /// The value for an expression: `None` when unset; text is read as pgbench does.
    pub fn value(&self) -> Option<Result<Val, EvalError>> {
        if !self.set {
            return None;
        }
        Some(match self.val {
            Some(v) => Ok(v),
            None => parse_text(&self.text),
        })
    }

    /// Whether the value is SQL NULL.
    pub fn is_null(&self) -> bool {
        self.val == Some(Val::Null)
    }

    /// Appends the value as text (how pgbench substitutes and binds it).
    pub fn write_text<W: std::fmt::Write>(&self, out: &mut W) {
        let _ = match self.val {
            None => out.write_str(&self.text),
            Some(Val::Null) => Ok(()),
            Some(Val::Bool(b)) => out.write_str(if b { "true" } else { "false" }),
            Some(Val::Int(i)) => write!(out, "{i}"),
            Some(Val::Double(d)) => write!(out, "{d}"),
        };
    }
}

/// pgbench's makeVariableValue: an integer, a double, or a boolean word; anything else is an error.
fn parse_text(t: &str) -> Result<Val, EvalError> {
    let s = t.trim();
    if s.eq_ignore_ascii_case("null") {
        return Ok(Val::Null);
    }
    if let Some(b) = parse_bool(s) {
        return Ok(Val::Bool(b));
    }
    if let Ok(i) = s.parse::<i64>() {
        return Ok(Val::Int(i));
    }
    if let Ok(d) = s.parse::<f64>() {
        return Ok(Val::Double(d));
    }
    Err(format!("malformed variable value \"{t}\""))
}

/// The boolean words pgbench accepts (a prefix of true/false/yes/no, on/off).
fn parse_bool(s: &str) -> Option<bool> {
    let l = s.len();
    if l == 0 {
        return None;
    }
    let pre = |w: &str| l <= w.len() && w[..l].eq_ignore_ascii_case(s);
    if pre("true") || pre("yes") || s.eq_ignore_ascii_case("on") {
        Some(true)
    } else if pre("false") || pre("no") || s.eq_ignore_ascii_case("off") {
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
        assert!(s.value().is_none());
        s.set_text("42");
        assert_eq!(s.value().unwrap().unwrap(), Val::Int(42));
        s.set_text("2.5");
        assert_eq!(s.value().unwrap().unwrap(), Val::Double(2.5));
        s.set_text("yes");
        assert_eq!(s.value().unwrap().unwrap(), Val::Bool(true));
        s.set_text("off");
        assert_eq!(s.value().unwrap().unwrap(), Val::Bool(false));
        s.set_text("hello");
        assert!(s.value().unwrap().is_err());
        s.set_val(Val::Int(-3));
        let mut out = String::new();
        s.write_text(&mut out);
        assert_eq!(out, "-3");
    }
}
