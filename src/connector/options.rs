//! libpq connection options that the driver's parser (`postgres::Config`) does not know or only
//! half knows (`sslmode=verify-full`, `sslrootcert`, `service`, `passfile`, ...), taken out of a `--dsn`
//! before the rest is handed to the driver.
//!
//! Both libpq forms are read: a URL (`postgres://...?sslmode=verify-full`) and a conninfo string
//! (`host=h sslmode='verify-full'`), with libpq's quoting (`'...'`, backslash escapes) and URL
//! percent-decoding. What is not ours is passed on untouched (re-quoted for conninfo), so the
//! driver still reports its own parse errors.
//!
//! Invariant: no value read here is ever part of an error message (a password may sit next to
//! the options), only option names.

/// The options this module takes out of a DSN; everything else goes to `postgres::Config`.
pub const OURS: [&str; 9] = [
    "service",
    "passfile",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslsni",
    // Accepted and ignored, as libpq does since TLS compression was removed.
    "sslcompression",
];

/// A DSN with our options taken out: `rest` is for the driver, `ours` in order of appearance.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// The DSN without our options (same form as given).
    pub rest: String,
    /// Our options, as `(name, value)`.
    pub ours: Vec<(String, String)>,
}

/// Splits `dsn` (URL or conninfo). The error names what is malformed, never a value.
pub fn split(dsn: &str) -> Result<Split, String> {
    let dsn = dsn.trim();
    if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        return Ok(split_url(dsn));
    }
    let pairs = conninfo_pairs(dsn)?;
    let mut out = Split::default();
    let mut rest = Vec::new();
    for (k, v) in pairs {
        if OURS.contains(&k.as_str()) {
            out.ours.push((k, v));
        } else {
            rest.push(format!("{k}={}", quote(&v)));
        }
    }
    out.rest = rest.join(" ");
    Ok(out)
}

fn split_url(url: &str) -> Split {
    let Some((base, query)) = url.split_once('?') else {
        return Split {
            rest: url.to_string(),
            ours: Vec::new(),
        };
    };
    let mut out = Split::default();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(k);
        if OURS.contains(&key.as_str()) {
            out.ours.push((key, percent_decode(v)));
        } else {
            kept.push(pair);
        }
    }
    out.rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    out
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// libpq's conninfo grammar: `key = value` pairs separated by whitespace; a value is either
/// single-quoted (with `\'` and `\\`) or runs to the next whitespace (backslash escapes too).
pub fn conninfo_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "missing \"=\" after \"{key}\" in the connection string"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(format!(
                            "unterminated quoted value of \"{key}\" in the connection string"
                        ))
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// A conninfo value, single-quoted with libpq's escapes.
pub fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(s: &Split) -> Vec<(&str, &str)> {
        s.ours
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn conninfo_options_are_taken_out_and_the_rest_requoted() {
        let s = split(r"host=h sslmode = verify-full password='it\'s' sslrootcert='/a b/ca.pem'")
            .unwrap();
        assert_eq!(
            ours(&s),
            [("sslmode", "verify-full"), ("sslrootcert", "/a b/ca.pem")]
        );
        assert_eq!(s.rest, r"host='h' password='it\'s'");
        let back = conninfo_pairs(&s.rest).unwrap();
        assert_eq!(back[1], ("password".into(), "it's".into()));
    }

    #[test]
    fn url_query_options_are_decoded_and_taken_out() {
        let s = split("postgres://u:pw@h:5432/db?sslmode=verify-ca&application_name=x&sslrootcert=%2Fca%20x.pem")
            .unwrap();
        assert_eq!(
            ours(&s),
            [("sslmode", "verify-ca"), ("sslrootcert", "/ca x.pem")]
        );
        assert_eq!(s.rest, "postgres://u:pw@h:5432/db?application_name=x");
        let s = split("postgresql://h/db?sslmode=require").unwrap();
        assert_eq!(s.rest, "postgresql://h/db");
        let s = split("postgres://h/db").unwrap();
        assert!(s.ours.is_empty());
    }

    #[test]
    fn malformed_conninfo_names_the_key_not_the_value() {
        let e = split("host=h password='hunter2").unwrap_err();
        assert!(e.contains("password") && !e.contains("hunter2"), "{e}");
        let e = split("host").unwrap_err();
        assert!(e.contains("host"), "{e}");
    }
}
