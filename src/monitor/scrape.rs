//! Where the server host's node_exporter answers (`--server-metrics URL`) and one HTTP GET of its
//! text page.
//!
//! Invariants: a user name and password in the URL are used for HTTP basic authentication
//! (node_exporter's web config supports it) and never shown: [`MetricsUrl::shown`] and `Debug`
//! carry the URL without them, and no error message contains the URL as given. A scrape is bounded
//! by a timeout the caller sets below the sampling interval, and it ignores proxy variables:
//! the agent sits on the database host, which pgstorm reaches directly.

use std::time::Duration;

use base64::Engine;

use crate::error;

/// A validated node_exporter URL.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsUrl {
    url: String,
    shown: String,
    authorization: Option<String>,
}

impl std::fmt::Debug for MetricsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl MetricsUrl {
    /// Parses `--server-metrics`: `http://host:port[/path]`, the path `/metrics` when none is
    /// given (node_exporter's), credentials optional.
    pub fn parse(given: &str) -> anyhow::Result<MetricsUrl> {
        let bad = |why: &str| {
            error::usage(format!(
                "--server-metrics: {why}; give node_exporter's address on the database host, \
                 e.g. http://db1:9100/metrics"
            ))
        };
        let mut url = url::Url::parse(given).map_err(|e| bad(&format!("not a URL ({e})")))?;
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(bad(
                    "https is not supported (node_exporter serves plain http unless its web \
                     config enables TLS); scrape it over http",
                ))
            }
            other => return Err(bad(&format!("scheme '{other}' is not http"))),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("the URL names no host"));
        }
        let authorization = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let user = decode(url.username());
            let password = decode(url.password().unwrap_or(""));
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            Some(format!("Basic {token}"))
        };
        // Both setters only fail on URLs that cannot have credentials, checked above.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        if url.path() == "/" || url.path().is_empty() {
            url.set_path("/metrics");
        }
        url.set_fragment(None);
        let url = url.to_string();
        Ok(MetricsUrl {
            shown: url.clone(),
            url,
            authorization,
        })
    }

    /// The URL without credentials: what reports and messages show.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// Fetches node_exporter's page; one per sampler thread (it keeps the connection alive).
pub struct Scraper {
    agent: ureq::Agent,
    url: MetricsUrl,
}

impl Scraper {
    /// A scraper whose every request gives up after `timeout`.
    pub fn new(url: MetricsUrl, timeout: Duration) -> Scraper {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .proxy(None)
            .max_redirects(0)
            .build()
            .into();
        Scraper { agent, url }
    }

    /// The URL scraped.
    pub fn url(&self) -> &MetricsUrl {
        &self.url
    }

    /// The page's text, or why there is none (without credentials: ureq's errors name the host,
    /// never the URL's user information).
    pub fn get(&self) -> Result<String, String> {
        let mut req = self.agent.get(&self.url.url);
        if let Some(a) = &self.url.authorization {
            req = req.header("Authorization", a);
        }
        let mut resp = req.call().map_err(|e| e.to_string())?;
        resp.body_mut()
            .read_to_string()
            .map_err(|e| format!("reading the body: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{exit_kind, ExitKind};

    #[test]
    fn credentials_authenticate_but_are_never_shown() {
        let u = MetricsUrl::parse("http://alice:s%40cret@db1:9100").unwrap();
        assert_eq!(u.shown(), "http://db1:9100/metrics");
        assert_eq!(format!("{u:?}"), "http://db1:9100/metrics");
        let expected = base64::engine::general_purpose::STANDARD.encode("alice:s@cret");
        assert_eq!(u.authorization, Some(format!("Basic {expected}")));
        let plain = MetricsUrl::parse("http://db1:9100/node/metrics").unwrap();
        assert_eq!(plain.shown(), "http://db1:9100/node/metrics");
        assert_eq!(plain.authorization, None);
    }

    #[test]
    fn bad_urls_are_usage_errors_that_keep_the_password_out() {
        for bad in [
            "db1:9100",
            "https://db1:9100",
            "ftp://db1/x",
            "not a url",
            "http://",
        ] {
            let e = MetricsUrl::parse(bad).unwrap_err();
            assert_eq!(exit_kind(&e), ExitKind::Usage, "{bad}: {e}");
            assert!(e.to_string().contains("--server-metrics"), "{e}");
        }
        let e = MetricsUrl::parse("https://bob:hunter2@db1:9100").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
