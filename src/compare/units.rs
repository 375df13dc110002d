//! Setting values in base units, so that `128MB` and `16384` 8kB pages are one value, and back to
//! the human units PostgreSQL itself prints.
//!
//! Invariants: memory is compared in bytes and time in milliseconds; a negative number is a
//! sentinel (`-1` = disabled, use the default), never a quantity, so it is neither scaled nor
//! given a unit; a value that is not a number compares as its text.

/// What a unit measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quantity {
    /// Bytes.
    Memory,
    /// Milliseconds.
    Time,
}

/// A setting's value: its text, and the number in base units when it is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    text: String,
    number: Option<(f64, Option<Quantity>)>,
}

const KB: f64 = 1024.0;

/// Memory units, largest first, as PostgreSQL names them.
const MEMORY: [(&str, f64); 5] = [
    ("TB", KB * KB * KB * KB),
    ("GB", KB * KB * KB),
    ("MB", KB * KB),
    ("kB", KB),
    ("B", 1.0),
];

/// Time units in milliseconds, largest first.
const TIME: [(&str, f64); 6] = [
    ("d", 86_400_000.0),
    ("h", 3_600_000.0),
    ("min", 60_000.0),
    ("s", 1000.0),
    ("ms", 1.0),
    ("us", 0.001),
];

/// The quantity and size in base units of a `pg_settings.unit` such as `8kB`, `16MB` or `ms`.
fn unit_scale(unit: &str) -> Option<(Quantity, f64)> {
    let unit = unit.trim();
    let split = unit
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(unit.len());
    let (count, name) = unit.split_at(split);
    let count: f64 = if count.is_empty() {
        1.0
    } else {
        count.parse().ok()?
    };
    let find = |table: &[(&str, f64)]| table.iter().find(|(n, _)| *n == name).map(|(_, s)| *s);
    find(&MEMORY)
        .map(|s| (Quantity::Memory, s * count))
        .or_else(|| find(&TIME).map(|s| (Quantity::Time, s * count)))
}

/// A number and its scale, unless it is a negative sentinel.
fn scaled(n: f64, scale: Option<(Quantity, f64)>) -> (f64, Option<Quantity>) {
    match scale {
        Some((q, s)) if n >= 0.0 => (n * s, Some(q)),
        _ => (n, None),
    }
}

impl Value {
    /// A `pg_settings` row's `setting` in the row's `unit`.
    pub fn from_row(setting: &str, unit: Option<&str>) -> Value {
        let number = setting
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(|n| scaled(n, unit.and_then(unit_scale)));
        Value {
            text: setting.to_string(),
            number,
        }
    }

    /// A value as `current_setting()` or `SHOW` prints it (`128MB`, `200ms`, `on`).
    pub fn from_shown(shown: &str) -> Value {
        let t = shown.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+')))
            .unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let number = digits
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .and_then(|n| match unit.trim() {
                "" => Some((n, None)),
                u => unit_scale(u).map(|s| scaled(n, Some(s))),
            });
        Value {
            text: shown.to_string(),
            number,
        }
    }

    /// Whether two values are the same setting value (numbers in base units, else text).
    pub fn same(&self, other: &Value) -> bool {
        match (self.number, other.number) {
            (Some((x, _)), Some((y, _))) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
            _ => self.text == other.text,
        }
    }

    /// The value in the largest unit that shows it exactly, as PostgreSQL prints it.
    pub fn human(&self) -> String {
        match self.number {
            Some((n, Some(q))) if n > 0.0 => {
                let table: &[(&str, f64)] = match q {
                    Quantity::Memory => &MEMORY,
                    Quantity::Time => &TIME,
                };
                table
                    .iter()
                    .find(|(_, size)| {
                        let x = n / size;
                        x >= 1.0 && (x - x.round()).abs() < 1e-9
                    })
                    .map(|(name, size)| format!("{}{name}", (n / size).round()))
                    .unwrap_or_else(|| {
                        let (name, size) = table[table.len() - 1];
                        format!("{}{name}", n / size)
                    })
            }
            Some((n, Some(_))) => format!("{n}"),
            _ => self.text.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_megabytes_are_one_value() {
        let pages = Value::from_row("16384", Some("8kB"));
        let shown = Value::from_shown("128MB");
        assert!(pages.same(&shown) && shown.same(&pages));
        assert_eq!(pages.human(), "128MB");
        assert!(!pages.same(&Value::from_shown("256MB")));
        // max_wal_size in MB against its SHOW form in GB.
        assert!(Value::from_row("1024", Some("MB")).same(&Value::from_shown("1GB")));
        assert_eq!(Value::from_row("1024", Some("MB")).human(), "1GB");
        // Units of older servers: min_wal_size counted in 16MB segments.
        assert_eq!(Value::from_row("5", Some("16MB")).human(), "80MB");
        assert_eq!(Value::from_row("100", Some("kB")).human(), "100kB");
        assert_eq!(Value::from_row("1", Some("B")).human(), "1B");
    }

    #[test]
    fn times_compare_in_milliseconds_and_print_in_the_largest_exact_unit() {
        assert!(Value::from_row("60", Some("s")).same(&Value::from_shown("1min")));
        assert_eq!(Value::from_row("60", Some("s")).human(), "1min");
        assert_eq!(Value::from_row("200", Some("ms")).human(), "200ms");
        assert_eq!(Value::from_row("300", Some("s")).human(), "5min");
        assert_eq!(Value::from_row("1440", Some("min")).human(), "1d");
        // A real-valued delay below a millisecond, as SHOW prints it.
        let half = Value::from_row("0.5", Some("ms"));
        assert_eq!(half.human(), "500us");
        assert!(half.same(&Value::from_shown("500us")));
        assert!(!Value::from_row("200", Some("ms")).same(&Value::from_row("50", Some("ms"))));
    }

    #[test]
    fn sentinels_zero_and_unitless_values_keep_their_text() {
        let off = Value::from_row("-1", Some("ms"));
        assert_eq!(off.human(), "-1");
        assert!(off.same(&Value::from_shown("-1")));
        assert!(!off.same(&Value::from_row("1", Some("ms"))));
        assert_eq!(Value::from_row("0", Some("ms")).human(), "0");
        assert!(Value::from_row("0", Some("ms")).same(&Value::from_shown("0")));
        assert_eq!(Value::from_row("0.9", None).human(), "0.9");
        assert!(Value::from_row("0.9", None).same(&Value::from_shown("0.9")));
        assert!(Value::from_row("on", None).same(&Value::from_shown("on")));
        assert!(!Value::from_row("on", None).same(&Value::from_shown("off")));
        assert_eq!(
            Value::from_shown("read committed").human(),
            "read committed"
        );
        // An unknown unit is text, never a number with a guessed scale.
        assert!(!Value::from_shown("5parsecs").same(&Value::from_shown("5")));
    }
}
