//! TLS settings with libpq's meaning, and the rustls client configuration built from them.
//!
//! Resolution follows libpq: a `--dsn` option wins over its environment variable (`sslmode` over
//! `PGSSLMODE`, ...), which wins over the default; the default files live in
//! `~/.postgresql/` (`root.crt`, `root.crl`, `postgresql.crt`, `postgresql.key`) and are used
//! only when they exist. A root certificate, when there is one, is checked in every TLS mode
//! (libpq: `require` with a root certificate behaves as `verify-ca`); `verify-ca`/`verify-full`
//! without one is an input error. `sslrootcert=system` means the OS store and, as in libpq 16,
//! makes `verify-full` the default and refuses weaker modes.
//!
//! Invariants: every file is read and checked here, at resolution, so a bad file fails before
//! any load; a client key readable by others is refused as libpq refuses it.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Result;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::verify::{ChainOnly, EncryptOnly};
use crate::error;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// Plaintext first; TLS if the server refuses plaintext.
    Allow,
    /// TLS if the server offers it, else plaintext (libpq's default).
    #[default]
    Prefer,
    /// TLS or nothing; the certificate is checked only against a root certificate if one exists.
    Require,
    /// TLS, and the server's chain must lead to a trusted root.
    VerifyCa,
    /// TLS, trusted chain, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<SslMode> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(error::usage(format!(
                    "invalid sslmode '{s}': use disable, allow, prefer, require, verify-ca or \
                     verify-full"
                )))
            }
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of CA certificates.
    File(PathBuf),
    /// The operating system's store (`sslrootcert=system`).
    System,
}

/// Resolved TLS settings (paths only: files are read by [`TlsSettings::client_config`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`, or `~/.postgresql/root.crt` when it exists.
    pub root_cert: Option<RootCert>,
    /// `sslcrl`, or `~/.postgresql/root.crl` when it exists (used only with a root certificate).
    pub crl: Option<PathBuf>,
    /// `sslcert`, or `~/.postgresql/postgresql.crt` when it exists.
    pub cert: Option<PathBuf>,
    /// `sslkey`, or `~/.postgresql/postgresql.key`.
    pub key: Option<PathBuf>,
    /// `sslsni` (default on): send the host name in the TLS handshake.
    pub sni: bool,
}

impl TlsSettings {
    /// The settings of a driver config that carries no libpq TLS options (e.g. a sandbox).
    pub fn from_driver(config: &postgres::Config) -> TlsSettings {
        use postgres::config::SslMode as Driver;
        TlsSettings {
            mode: match config.get_ssl_mode() {
                Driver::Disable => SslMode::Disable,
                Driver::Require => SslMode::Require,
                _ => SslMode::Prefer,
            },
            sni: true,
            ..TlsSettings::default()
        }
    }

    /// Resolves from DSN options (`opt`), environment variables and the default files in `home`.
    pub fn resolve(
        opt: &dyn Fn(&str) -> Option<String>,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<TlsSettings> {
        let get = |key: &str, var: &str| opt(key).or_else(|| env(var)).filter(|v| !v.is_empty());
        let default_file = |name: &str| {
            home.map(|h| h.join(".postgresql").join(name))
                .filter(|p| p.exists())
        };
        let root_cert = match get("sslrootcert", "PGSSLROOTCERT") {
            Some(v) if v == "system" => Some(RootCert::System),
            Some(v) => Some(RootCert::File(v.into())),
            None => default_file("root.crt").map(RootCert::File),
        };
        let mode = match get("sslmode", "PGSSLMODE") {
            Some(m) => m.parse()?,
            None if root_cert == Some(RootCert::System) => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if root_cert == Some(RootCert::System) && mode != SslMode::VerifyFull {
            return Err(error::usage(format!(
                "weak sslmode '{mode}' may not be used with sslrootcert=system (use verify-full)"
            )));
        }
        let sni = match get("sslsni", "PGSSLSNI").as_deref() {
            None | Some("1") => true,
            Some("0") => false,
            Some(v) => {
                return Err(error::usage(format!(
                    "invalid sslsni '{v}': use 1 (send the host name) or 0"
                )))
            }
        };
        Ok(TlsSettings {
            mode,
            crl: get("sslcrl", "PGSSLCRL")
                .map(PathBuf::from)
                .or_else(|| default_file("root.crl")),
            cert: get("sslcert", "PGSSLCERT")
                .map(PathBuf::from)
                .or_else(|| default_file("postgresql.crt")),
            key: get("sslkey", "PGSSLKEY")
                .map(PathBuf::from)
                .or_else(|| home.map(|h| h.join(".postgresql").join("postgresql.key"))),
            root_cert,
            sni,
        })
    }

    /// The rustls configuration, or `None` for `disable`. Reads and checks every file.
    pub fn client_config(&self) -> Result<Option<Arc<ClientConfig>>> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match &self.root_cert {
            None if matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
                return Err(error::usage(format!(
                    "sslmode={} needs a root certificate to check the server against: set \
                         sslrootcert (a PEM file, or 'system' for the OS store; PGSSLROOTCERT) \
                         or put the CA in ~/.postgresql/root.crt",
                    self.mode
                )))
            }
            None => Arc::new(EncryptOnly(provider.clone())),
            Some(root) => {
                let roots = Arc::new(load_roots(root)?);
                let mut builder =
                    WebPkiServerVerifier::builder_with_provider(roots, provider.clone());
                if let Some(crl) = &self.crl {
                    builder = builder.with_crls(load_crls(crl)?);
                }
                let webpki = builder
                    .build()
                    .map_err(|e| error::usage(format!("cannot use the root certificates: {e}")))?;
                if self.mode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| error::usage(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match self.client_identity()? {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
                error::usage(format!(
                    "the client certificate and key do not go together: {e}"
                ))
            })?,
            None => builder.with_no_client_auth(),
        };
        config.enable_sni = self.sni;
        Ok(Some(Arc::new(config)))
    }

    /// The client certificate chain and key, when a certificate is configured.
    fn client_identity(
        &self,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
        let Some(cert) = &self.cert else {
            return Ok(None);
        };
        let chain = read_pem_certs(cert, "sslcert")?;
        let key = self.key.as_deref().ok_or_else(|| {
            error::usage(format!(
                "sslcert {} is set but no sslkey: name the private key file",
                cert.display()
            ))
        })?;
        check_key_permissions(key)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
            error::usage(format!(
                "cannot read the private key sslkey {}: {e}; give a PEM key file",
                key.display()
            ))
        })?;
        Ok(Some((chain, key)))
    }
}

fn load_roots(root: &RootCert) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::File(path) => {
            for cert in read_pem_certs(path, "sslrootcert")? {
                store.add(cert).map_err(|e| {
                    error::usage(format!(
                        "sslrootcert {} holds a certificate that cannot be a root: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(error::usage(
                    "sslrootcert=system but the operating system's certificate store is empty or \
                     unreadable: install the CA certificates package or name a PEM file",
                ));
            }
        }
    }
    Ok(store)
}

fn read_pem_certs(path: &Path, option: &str) -> Result<Vec<CertificateDer<'static>>> {
    let bad = |what: String| {
        error::usage(format!(
            "cannot read {option} {}: {what}; give a PEM certificate file",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    Ok(certs)
}

fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    CertificateRevocationListDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            error::usage(format!(
                "cannot read sslcrl {}: {e}; give a PEM CRL file",
                path.display()
            ))
        })
}

/// libpq's rule: the key must be owned by us with no group/world access (0600), or owned by root
/// and at most group-readable (0640). Anything else is refused (exit 3, as the server is not
/// reachable with it), naming the file and the fix.
pub fn check_key_permissions(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| {
        error::usage(format!(
            "cannot read the private key sslkey {}: {e}",
            path.display()
        ))
    })?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let mode = meta.mode();
    let open = if meta.uid() == euid {
        mode & 0o077 != 0
    } else if meta.uid() == 0 {
        mode & 0o037 != 0
    } else {
        return Err(error::target(format!(
            "private key file {} must be owned by the current user or root",
            path.display()
        )));
    };
    if open {
        return Err(error::target(format!(
            "private key file {} has group or world access (mode {:o}); it must be u=rw (0600) \
             or less if owned by the current user, or u=rw,g=r (0640) or less if owned by root: \
             chmod 600 it",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn option_beats_environment_beats_default() {
        let env = |k: &str| (k == "PGSSLMODE").then(|| "require".to_string());
        let s = TlsSettings::resolve(&none, &env, None).unwrap();
        assert_eq!(s.mode, SslMode::Require);
        let opt = |k: &str| (k == "sslmode").then(|| "disable".to_string());
        let s = TlsSettings::resolve(&opt, &env, None).unwrap();
        assert_eq!(s.mode, SslMode::Disable);
        let s = TlsSettings::resolve(&none, &none, None).unwrap();
        assert_eq!((s.mode, s.sni, s.root_cert), (SslMode::Prefer, true, None));
    }

    #[test]
    fn unknown_sslmode_is_a_usage_error() {
        let opt = |k: &str| (k == "sslmode").then(|| "verify-everything".to_string());
        let e = TlsSettings::resolve(&opt, &none, None).unwrap_err();
        assert_eq!(error::exit_kind(&e), error::ExitKind::Usage);
        assert!(e.to_string().contains("verify-everything"), "{e}");
    }

    #[test]
    fn system_roots_default_to_verify_full_and_refuse_weaker_modes() {
        let opt = |k: &str| (k == "sslrootcert").then(|| "system".to_string());
        let s = TlsSettings::resolve(&opt, &none, None).unwrap();
        assert_eq!(s.mode, SslMode::VerifyFull);
        let env = |k: &str| (k == "PGSSLMODE").then(|| "require".to_string());
        let e = TlsSettings::resolve(&opt, &env, None).unwrap_err();
        assert!(e.to_string().contains("weak sslmode 'require'"), "{e}");
    }

    #[test]
    fn verify_without_a_root_certificate_is_refused_before_connecting() {
        let opt = |k: &str| (k == "sslmode").then(|| "verify-full".to_string());
        let s = TlsSettings::resolve(&opt, &none, None).unwrap();
        let e = s.client_config().unwrap_err();
        assert_eq!(error::exit_kind(&e), error::ExitKind::Usage);
        assert!(e.to_string().contains("sslrootcert"), "{e}");
    }

    #[test]
    fn key_readable_by_others_is_refused_and_0600_accepted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_key_permissions(&key).unwrap_err();
        assert_eq!(error::exit_kind(&e), error::ExitKind::Target);
        assert!(e.to_string().contains("group or world access"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_key_permissions(&key).unwrap();
    }
}
