//! TLS against a sandbox that accepts only TLS: `ssl = on` with certificates made here (a private
//! CA, a server certificate for localhost/127.0.0.1, a client certificate) and a `pg_hba.conf`
//! with only `hostssl` lines, so any plaintext connection is refused by the server itself.
//!
//! Positive controls: verify-full connects in every scenario and the server's `pg_stat_ssl` shows
//! the sessions encrypted; a client certificate logs in with `cert` authentication. Negative
//! controls: a certificate for another host, an unknown CA, `require` against a server without
//! TLS, a client key readable by others and an unknown sslmode each fail before any load, with
//! one line on stderr and the documented exit code.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pgstorm::report::model::RunDocument;
use pgstorm::sandbox::{Sandbox, SandboxOptions};
use pgstorm::wire::{Msg, WireConn};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SerialNumber,
};

/// The TLS-only sandbox and the client-side files of its PKI.
struct Tls {
    sandbox: Sandbox,
    /// The CA that signed the server and client certificates.
    ca: PathBuf,
    /// A CA that signed nothing the server presents.
    other_ca: PathBuf,
    /// Certificate and key (0600) of role `certuser`.
    client_cert: PathBuf,
    client_key: PathBuf,
    /// CRLs signed by `ca`: one revokes the server's certificate, the other only another serial.
    crl_revoking_server: PathBuf,
    crl_revoking_other: PathBuf,
}

/// The serial number of the server's certificate, which one of the CRLs revokes.
const SERVER_SERIAL: u64 = 0x5e4e;

fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A leaf certificate signed by `ca`: (certificate PEM, key PEM).
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    serial: u64,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.serial_number = Some(SerialNumber::from(serial));
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A PEM CRL signed by `ca` that revokes the certificate with `serial`.
fn crl(ca: &CertifiedIssuer<'static, KeyPair>, serial: u64) -> String {
    let params = CertificateRevocationListParams {
        this_update: date_time_ymd(2020, 1, 1),
        next_update: date_time_ymd(2099, 1, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(serial),
            revocation_time: date_time_ymd(2020, 1, 1),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(ca).unwrap().pem().unwrap()
}

fn write_private(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn tls() -> &'static Tls {
    static TLS: OnceLock<Tls> = OnceLock::new();
    TLS.get_or_init(|| {
        let sandbox = common::fresh_sandbox(&SandboxOptions::default());
        let ca = make_ca("pgstorm test CA");
        let other = make_ca("someone else's CA");
        let (server_cert, server_key) = leaf(
            &ca,
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            SERVER_SERIAL,
        );
        let (client_cert, client_key) = leaf(
            &ca,
            "certuser",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            SERVER_SERIAL + 1,
        );
        for (name, content) in [
            ("server.crt", server_cert.as_str()),
            ("server.key", server_key.as_str()),
            ("root.crt", ca.pem().as_str()),
        ] {
            sandbox.install_file(name, content).unwrap();
        }
        // The client's files live in the sandbox's own directory, removed with it.
        let dir = sandbox.socket_dir().join("client");
        std::fs::create_dir(&dir).unwrap();
        let files = Tls {
            ca: dir.join("ca.crt"),
            other_ca: dir.join("other-ca.crt"),
            client_cert: dir.join("certuser.crt"),
            client_key: dir.join("certuser.key"),
            crl_revoking_server: dir.join("server-revoked.crl"),
            crl_revoking_other: dir.join("other-revoked.crl"),
            sandbox,
        };
        std::fs::write(&files.crl_revoking_server, crl(&ca, SERVER_SERIAL)).unwrap();
        std::fs::write(&files.crl_revoking_other, crl(&ca, SERVER_SERIAL + 7)).unwrap();
        std::fs::write(&files.ca, ca.pem()).unwrap();
        std::fs::write(&files.other_ca, other.pem()).unwrap();
        std::fs::write(&files.client_cert, client_cert).unwrap();
        write_private(&files.client_key, &client_key);

        let mut admin = files.sandbox.pg_config().connect(postgres::NoTls).unwrap();
        // One statement at a time: ALTER SYSTEM refuses to run in a (multi-statement) block.
        for sql in [
            // A database per test that runs the binary: seeding one must not race another's load.
            "CREATE DATABASE tls_pool",
            "CREATE DATABASE tls_mux",
            "CREATE DATABASE tls_run",
            "CREATE DATABASE tls_pass",
            "CREATE DATABASE tls_store",
            "CREATE ROLE certuser LOGIN",
            "SET password_encryption = 'scram-sha-256'",
            "CREATE ROLE scramuser LOGIN PASSWORD 'scram-s3cret'",
            "GRANT ALL ON DATABASE pgstorm TO scramuser",
            "ALTER DATABASE tls_pass OWNER TO scramuser",
            "GRANT ALL ON DATABASE pgstorm TO certuser",
            "ALTER SYSTEM SET ssl_cert_file = 'server.crt'",
            "ALTER SYSTEM SET ssl_key_file = 'server.key'",
            "ALTER SYSTEM SET ssl_ca_file = 'root.crt'",
            "ALTER SYSTEM SET ssl = on",
        ] {
            admin.batch_execute(sql).unwrap();
        }
        files
            .sandbox
            .install_file(
                "pg_hba.conf",
                "hostssl all certuser 127.0.0.1/32 cert\n\
                 hostssl all scramuser 127.0.0.1/32 scram-sha-256\n\
                 hostssl all all 127.0.0.1/32 trust\n",
            )
            .unwrap();
        admin.batch_execute("SELECT pg_reload_conf()").unwrap();
        drop(admin);
        wait_for_tls(&files);
        files
    })
}

/// The reload is asynchronous: wait (bounded) until a verify-full connection succeeds.
fn wait_for_tls(t: &Tls) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let target = pgstorm::target::resolve(Some(&dsn(t, "verify-full", ""))).unwrap();
        match target.unwrap().connect() {
            Ok(_) => return,
            Err(e) if Instant::now() >= deadline => panic!("the sandbox never spoke TLS: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A conninfo for host `localhost` with `sslmode` and the test CA, plus `extra`.
fn dsn(t: &Tls, sslmode: &str, extra: &str) -> String {
    format!(
        "host=localhost port={} user=pgstorm dbname=pgstorm sslmode={sslmode} sslrootcert={} \
         {extra}",
        t.sandbox.port(),
        t.ca.display()
    )
}

/// Runs the binary; (exit code, stdout, stderr).
fn pgstorm(args: &[&str]) -> (i32, String, String) {
    pgstorm_env(args, &[])
}

/// Runs the binary with extra environment variables; (exit code, stdout, stderr).
fn pgstorm_env(args: &[&str], env: &[(&str, &Path)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgstorm"))
        .args(args)
        .env_remove("PGSSLMODE")
        .env_remove("PGSSLROOTCERT")
        .env_remove("PGPASSWORD")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        stderr,
    )
}

/// The one result folder's run.json under `dir`.
fn run_json(dir: &Path) -> RunDocument {
    let found = walk(dir)
        .into_iter()
        .find(|p| p.ends_with("run.json"))
        .unwrap_or_else(|| panic!("no run.json under {}", dir.display()));
    serde_json::from_slice(&std::fs::read(found).unwrap()).unwrap()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// What a watcher saw in `pg_stat_ssl` while pgstorm ran.
#[derive(Debug, Default)]
struct Seen {
    /// Most load backends (`application_name = 'pgstorm'`) of the database seen at once.
    max_load: i64,
    /// pgstorm backends of any kind (load, monitor, sampler) seen without TLS, summed over polls.
    plaintext: i64,
}

/// Runs `f` while a watcher polls `pg_stat_ssl` for pgstorm's backends (load backends counted in
/// database `db` only: other tests run their own loads meanwhile).
fn watching_backends<R>(t: &Tls, db: &'static str, f: impl FnOnce() -> R) -> (R, Seen) {
    let target = pgstorm::target::resolve(Some(&dsn(t, "verify-full", "")))
        .unwrap()
        .unwrap();
    let mut watcher = target.connect().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut seen = Seen::default();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let row = watcher
                .query_one(
                    "SELECT count(*) FILTER (WHERE a.application_name = 'pgstorm' AND s.ssl \
                                             AND a.datname = $1), \
                            count(*) FILTER (WHERE NOT s.ssl) \
                     FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                     WHERE a.application_name LIKE 'pgstorm%' AND a.pid <> pg_backend_pid()",
                    &[&db],
                )
                .unwrap();
            seen.max_load = seen.max_load.max(row.get(0));
            seen.plaintext += row.get::<_, i64>(1);
            std::thread::sleep(Duration::from_millis(50));
        }
        seen
    });
    let r = f();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    (r, handle.join().unwrap())
}

/// A TLS session's own view of itself: (ssl, version) from `pg_stat_ssl`.
fn own_ssl(client: &mut postgres::Client) -> (bool, Option<String>) {
    let row = client
        .query_one(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn verify_full_connects_over_tls_and_the_server_sees_it_encrypted() {
    let t = tls();
    let target = pgstorm::target::resolve(Some(&dsn(t, "verify-full", "")))
        .unwrap()
        .unwrap();
    let mut c = target.connect().unwrap();
    let (ssl, version) = own_ssl(&mut c);
    assert!(ssl);
    assert_eq!(version.as_deref(), Some("TLSv1.3"));
}

#[test]
fn a_client_certificate_logs_in_with_cert_authentication() {
    let t = tls();
    let extra = format!(
        "user=certuser sslcert={} sslkey={}",
        t.client_cert.display(),
        t.client_key.display()
    );
    let target = pgstorm::target::resolve(Some(&dsn(t, "verify-full", &extra)))
        .unwrap()
        .unwrap();
    let mut c = target.connect().unwrap();
    let user: String = c.query_one("SELECT current_user", &[]).unwrap().get(0);
    assert_eq!(user, "certuser");
    assert!(own_ssl(&mut c).0);
    // Negative control: without the certificate the same role is refused.
    let bare = pgstorm::target::resolve(Some(&dsn(t, "verify-full", "user=certuser")))
        .unwrap()
        .unwrap();
    let err = bare.connect().err().expect("refused without a certificate");
    assert_eq!(
        pgstorm::error::exit_kind(&err),
        pgstorm::error::ExitKind::Target
    );
}

#[test]
fn scram_with_channel_binding_required_logs_in() {
    let t = tls();
    // channel_binding=require fails unless SCRAM-SHA-256-PLUS ran over the TLS session.
    let target = pgstorm::target::resolve(Some(&dsn(
        t,
        "verify-full",
        "user=scramuser password=scram-s3cret channel_binding=require",
    )))
    .unwrap()
    .unwrap();
    let mut c = target.connect().unwrap();
    let user: String = c.query_one("SELECT current_user", &[]).unwrap().get(0);
    assert_eq!(user, "scramuser");
    // The multiplexed driver's own SCRAM: it refuses require unless it bound to the session, and
    // the server checks the binding data.
    WireConn::connect(&target.config, &target.connector, "").unwrap();
}

#[test]
fn verify_ca_accepts_another_name_that_verify_full_refuses() {
    let t = tls();
    // hostaddr connects to the sandbox; the certificate does not name db.elsewhere.example.
    let wrong = |mode: &str| {
        format!(
            "host=db.elsewhere.example hostaddr=127.0.0.1 port={} user=pgstorm dbname=pgstorm \
             sslmode={mode} sslrootcert={}",
            t.sandbox.port(),
            t.ca.display()
        )
    };
    let ca_only = pgstorm::target::resolve(Some(&wrong("verify-ca")))
        .unwrap()
        .unwrap();
    assert!(own_ssl(&mut ca_only.connect().unwrap()).0);
    let full = pgstorm::target::resolve(Some(&wrong("verify-full")))
        .unwrap()
        .unwrap();
    let err = full
        .connect()
        .err()
        .expect("refused: the certificate names another host")
        .to_string();
    assert!(err.contains("not valid for name"), "{err}");
}

/// Seeds pgbench's tables in `db` over verify-full, then runs `queries -b select-only -c
/// clients -T 2` plus `extra` while watching the server: asserts the run succeeded, the watcher
/// saw all clients' backends and none in plaintext; returns stdout and run.json (written under
/// `results`).
fn select_only_over_tls(
    t: &Tls,
    db: &'static str,
    clients: i64,
    extra: &[&str],
    results: &Path,
) -> (String, RunDocument) {
    let dsn = dsn(t, "verify-full", &format!("dbname={db}"));
    let (code, _, err) = pgstorm(&["seed", "--dsn", &dsn, "--pgbench"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("connected over TLS 1.3"), "{err}");
    let c = clients.to_string();
    let mut args = vec![
        "queries",
        "--dsn",
        &dsn,
        "-b",
        "select-only",
        "-c",
        &c,
        "-T",
        "2",
    ];
    args.extend(extra);
    args.extend(["--results-dir", results.to_str().unwrap()]);
    let ((code, out, err), seen) = watching_backends(t, db, || pgstorm(&args));
    assert_eq!(code, 0, "{err}");
    assert!(
        seen.max_load >= clients,
        "the watcher saw every client's backend: {seen:?}"
    );
    assert_eq!(
        seen.plaintext, 0,
        "every pgstorm backend is encrypted: {seen:?}"
    );
    (out, run_json(results))
}

#[test]
fn seed_queries_isolation_and_connections_run_over_verify_full() {
    let t = tls();
    let dsn = dsn(t, "verify-full", "dbname=tls_pool");
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("q");
    let (out, doc) = select_only_over_tls(t, "tls_pool", 2, &[], &results);
    assert!(
        out.contains("TLS 1.3"),
        "the header names the TLS version: {out}"
    );
    let sec = doc.target.security.expect("run.json records the security");
    assert_eq!(
        (sec.sslmode.as_str(), sec.tls_version.as_str()),
        ("verify-full", "TLSv1.3")
    );
    assert_ne!(sec.tls_cipher, "none");
    common::assert_run_json_matches_schema(run_json_dir(&results).as_path());

    let results = tmp.path().join("i");
    let (code, _, err) = pgstorm(&[
        "isolation",
        "--dsn",
        &dsn,
        "--check",
        "lost-update",
        "--level",
        "read-committed",
        "--workers",
        "2",
        "-T",
        "1",
        "--results-dir",
        results.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");

    let results = tmp.path().join("c");
    let (code, _, err) = pgstorm(&[
        "connections",
        "--dsn",
        &dsn,
        "--storm",
        "-c",
        "4",
        "-T",
        "1",
        "--results-dir",
        results.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let doc = run_json(&results);
    assert_eq!(doc.target.security.unwrap().tls_version, "TLSv1.3");
}

fn run_json_dir(results: &Path) -> PathBuf {
    walk(results)
        .into_iter()
        .find(|p| p.ends_with("run.json"))
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap()
}

#[test]
fn the_multiplexed_driver_runs_over_verify_full_and_the_server_sees_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, doc) = select_only_over_tls(tls(), "tls_mux", 4, &["-j", "2"], tmp.path());
    let load = doc.load.expect("a load section");
    assert_eq!(load.config.threads, Some(2));
    assert!(
        load.summary.count > 0,
        "transactions ran: {:?}",
        load.summary
    );
    assert!(load.summary.errors.is_empty(), "{:?}", load.summary.errors);
}

#[test]
fn a_password_from_a_pgpass_file_logs_in_and_never_shows() {
    let t = tls();
    let dir = tempfile::tempdir().unwrap();
    let passfile = dir.path().join("pgpass");
    write_private(
        &passfile,
        &format!(
            "# another server first: the first match wins\n\
             elsewhere:*:*:scramuser:wrong\n\
             localhost:{}:*:scramuser:scram-s3cret\n",
            t.sandbox.port()
        ),
    );
    let dsn = dsn(t, "verify-full", "user=scramuser dbname=tls_pass");
    let env = [("PGPASSFILE", passfile.as_path())];
    let (code, out, err) = pgstorm_env(&["seed", "--dsn", &dsn, "--pgbench"], &env);
    assert_eq!(code, 0, "{err}");
    let mut seen = out + &err;
    let results = dir.path().join("r");
    let (code, out, err) = pgstorm_env(
        &[
            "queries",
            "--dsn",
            &dsn,
            "-b",
            "select-only",
            "-c",
            "2",
            "-j",
            "1",
            "-T",
            "1",
            "--results-dir",
            results.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    seen.push_str(&out);
    seen.push_str(&err);
    for f in walk(&results) {
        seen.push_str(&String::from_utf8_lossy(&std::fs::read(f).unwrap()));
    }
    assert!(seen.contains("TLS 1.3"), "{seen}");
    assert!(!seen.contains("scram-s3cret"), "the password leaked");
    let security = run_json(&results).target.security.unwrap();
    assert_eq!(
        security.auth_exchange.as_deref(),
        Some("SCRAM-SHA-256-PLUS"),
        "run.json records how the role logged in"
    );

    // Negative control: the same file readable by others is ignored with a warning, and the
    // login fails for want of a password.
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = pgstorm_env(&["seed", "--dsn", &dsn, "--pgbench"], &env);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("group or world access"), "{err}");
    assert!(!err.contains("scram-s3cret"), "the password leaked: {err}");
}

/// Waits (up to 10 s) for `events` on `fd`.
fn poll_fd(fd: std::os::fd::RawFd, events: libc::c_short) {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, 10_000) };
    assert!(rc > 0, "socket not ready within 10 s");
}

#[test]
fn the_wire_connection_reassembles_a_reply_spanning_many_tls_records() {
    let t = tls();
    let target = pgstorm::target::resolve(Some(&dsn(t, "verify-full", "")))
        .unwrap()
        .unwrap();
    let mut conn = WireConn::connect(&target.config, &target.connector, "").unwrap();
    // 200 kB: a dozen 16 kB TLS records, more than the input buffer holds at first.
    conn.queue_query_with(|b| b.push_bytes(b"SELECT repeat('x', 200000)"));
    while !conn.flush().unwrap() {
        poll_fd(conn.as_raw_fd(), libc::POLLOUT);
    }
    let mut len = None;
    loop {
        let ready = conn
            .read_available(|m| {
                if let Msg::DataRow(d) = m {
                    len = d.values().next().flatten().map(<[u8]>::len);
                }
            })
            .unwrap();
        if ready.is_some() {
            break;
        }
        if !conn.has_buffered_message() {
            poll_fd(conn.as_raw_fd(), libc::POLLIN);
        }
    }
    assert_eq!(len, Some(200_000));
}

#[test]
fn the_suite_runs_over_verify_full() {
    let t = tls();
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = pgstorm(&[
        "run",
        "--dsn",
        &dsn(t, "verify-full", "dbname=tls_run"),
        "--results-dir",
        tmp.path().to_str().unwrap(),
        "-c",
        "2",
        "-T",
        "1",
        "--warmup",
        "0",
    ]);
    assert!(code == 0 || code == 1, "ran to a verdict: {err}");
    assert!(err.contains("connected over TLS 1.3"), "{err}");
}

/// One line on stderr with `needle`, the exit code, and no result written.
fn refused(args: &[&str], code: i32, needle: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("r");
    let mut all = args.to_vec();
    all.extend(["--results-dir", results.to_str().unwrap()]);
    let (got, _, err) = pgstorm(&all);
    assert_eq!(got, code, "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert!(errors[0].contains(needle), "{needle} in {err}");
    assert!(!err.contains("s3cret"), "password leaked: {err}");
    // The results folder is proven writable before the server is contacted, so it may exist;
    // nothing may be in it.
    let left: Vec<_> = std::fs::read_dir(&results)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing written, but found {left:?}");
}

#[test]
fn bad_tls_input_fails_before_any_load_with_one_line() {
    let t = tls();
    let q = |dsn: &str| -> Vec<String> {
        ["queries", "--dsn", dsn, "-c", "1", "-T", "1"]
            .map(String::from)
            .to_vec()
    };
    let run = |dsn: String, code: i32, needle: &str| {
        let args = q(&dsn);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, code, needle);
    };
    // A certificate for another host.
    run(
        format!(
            "host=db.elsewhere.example hostaddr=127.0.0.1 port={} user=pgstorm password=s3cret \
             dbname=pgstorm sslmode=verify-full sslrootcert={}",
            t.sandbox.port(),
            t.ca.display()
        ),
        3,
        "not valid for name",
    );
    // An unknown CA.
    run(
        format!(
            "host=localhost port={} user=pgstorm password=s3cret dbname=pgstorm \
             sslmode=verify-full sslrootcert={}",
            t.sandbox.port(),
            t.other_ca.display()
        ),
        3,
        "UnknownIssuer",
    );
    // A client key readable by others.
    let loose = t.client_key.with_extension("loose");
    std::fs::copy(&t.client_key, &loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    run(
        dsn(
            t,
            "verify-full",
            &format!(
                "user=certuser password=s3cret sslcert={} sslkey={}",
                t.client_cert.display(),
                loose.display()
            ),
        ),
        3,
        "group or world access",
    );
    // An unknown sslmode.
    run(
        dsn(t, "verify-everything", "password=s3cret"),
        2,
        "invalid sslmode",
    );
}

#[test]
fn require_against_a_server_without_tls_is_exit_3() {
    let sb = common::sandbox();
    let dsn = format!(
        "postgres://pgstorm:s3cret@127.0.0.1:{}/pgstorm?sslmode=require",
        sb.port()
    );
    refused(
        &["queries", "--dsn", &dsn, "-c", "1", "-T", "1"],
        3,
        "server does not support TLS",
    );
    // The multiplexed driver refuses the same way.
    refused(
        &[
            "queries",
            "--dsn",
            &dsn,
            "-b",
            "select-only",
            "-c",
            "1",
            "-j",
            "1",
            "-T",
            "1",
        ],
        3,
        "does not support TLS",
    );
}

/// Whether each driver's session to `dsn` runs over TLS, as the server sees it (`pg_stat_ssl`):
/// (pool driver's connector, `-j` driver's wire connection).
fn tls_of_both_drivers(dsn: &str) -> (bool, bool) {
    let target = pgstorm::target::resolve(Some(dsn)).unwrap().unwrap();
    let mut c = target.connect().unwrap();
    let pool = own_ssl(&mut c).0;
    let wire = WireConn::connect(&target.config, &target.connector, "").unwrap();
    let mux: bool = c
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = $1",
            &[&wire.backend_pid()],
        )
        .unwrap()
        .get(0);
    (pool, mux)
}

#[test]
fn prefer_and_allow_settle_on_tls_or_plaintext_as_libpq_does() {
    let t = tls();
    // The TLS-only server: prefer asks for TLS first; allow tries plaintext, is refused by
    // pg_hba.conf (only hostssl lines) and retries with TLS.
    assert_eq!(tls_of_both_drivers(&dsn(t, "prefer", "")), (true, true));
    assert_eq!(tls_of_both_drivers(&dsn(t, "allow", "")), (true, true));
    // A server without TLS: prefer falls back to plaintext, allow never asks.
    let sb = common::sandbox();
    for mode in ["prefer", "allow"] {
        let plain = format!(
            "host=127.0.0.1 port={} user={} dbname={} sslmode={mode}",
            sb.port(),
            sb.user(),
            sb.dbname()
        );
        assert_eq!(tls_of_both_drivers(&plain), (false, false), "{mode}");
    }
}

#[test]
fn an_sslcrl_that_revokes_the_server_certificate_refuses_it_in_both_drivers() {
    let t = tls();
    // Negative control: a CRL of the same CA that revokes another serial changes nothing.
    let other = format!("sslcrl={}", t.crl_revoking_other.display());
    assert_eq!(
        tls_of_both_drivers(&dsn(t, "verify-full", &other)),
        (true, true)
    );
    let revoked = dsn(
        t,
        "verify-full",
        &format!("password=s3cret sslcrl={}", t.crl_revoking_server.display()),
    );
    let target = pgstorm::target::resolve(Some(&revoked)).unwrap().unwrap();
    let err = target.connect().err().expect("a revoked certificate");
    assert!(format!("{err:#}").contains("Revoked"), "{err:#}");
    let err = WireConn::connect(&target.config, &target.connector, "")
        .expect_err("a revoked certificate, -j");
    assert!(err.to_string().contains("Revoked"), "{err}");
    refused(
        &["queries", "--dsn", &revoked, "-c", "1", "-T", "1"],
        3,
        "Revoked",
    );
}

/// The first bytes a driver sends after a fake server at 127.0.0.1 accepted its SSLRequest: the
/// TLS ClientHello (the fake server then hangs up, so `connect` fails, as it should).
fn client_hello(connect: impl FnOnce(u16)) -> Vec<u8> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut request = [0u8; 8];
        s.read_exact(&mut request).unwrap();
        s.write_all(b"S").unwrap();
        // A TLS record: 5-byte header whose last two bytes are the body's length.
        let mut header = [0u8; 5];
        s.read_exact(&mut header).unwrap();
        let mut body = vec![0u8; u16::from_be_bytes([header[3], header[4]]) as usize];
        s.read_exact(&mut body).unwrap();
        body
    });
    connect(port);
    server.join().unwrap()
}

#[test]
fn sslsni_0_keeps_the_host_name_out_of_the_handshake_in_both_drivers() {
    let has_name = |hello: &[u8]| hello.windows(9).any(|w| w == b"localhost");
    for sni in ["1", "0"] {
        let dsn = |port: u16| {
            format!(
                "host=localhost hostaddr=127.0.0.1 port={port} user=pgstorm dbname=pgstorm \
                 sslmode=require sslsni={sni} connect_timeout=20"
            )
        };
        let pool = client_hello(|port| {
            let target = pgstorm::target::resolve(Some(&dsn(port))).unwrap().unwrap();
            assert!(target.connect().is_err(), "the fake server hangs up");
        });
        let mux = client_hello(|port| {
            let target = pgstorm::target::resolve(Some(&dsn(port))).unwrap().unwrap();
            assert!(WireConn::connect(&target.config, &target.connector, "").is_err());
        });
        // sslsni=1 is the positive control: the name is there to be found.
        assert_eq!(
            (has_name(&pool), has_name(&mux)),
            (sni == "1", sni == "1"),
            "sslsni={sni}"
        );
    }
}

#[test]
fn sslrootcert_system_verifies_against_the_operating_systems_store() {
    let t = tls();
    let dsn = format!(
        "host=localhost port={} user=pgstorm dbname=tls_store sslmode=verify-full \
         sslrootcert=system",
        t.sandbox.port()
    );
    // The OS store is whatever SSL_CERT_FILE names (as with OpenSSL): with the test CA in it, the
    // server verifies; with another CA only, it does not, so the store really was consulted.
    let (code, out, err) = pgstorm_env(
        &["seed", "--dsn", &dsn, "--pgbench"],
        &[("SSL_CERT_FILE", t.ca.as_path())],
    );
    assert_eq!(code, 0, "{err}");
    assert!((out + &err).contains("TLS 1.3"), "{err}");
    let (code, _, err) = pgstorm_env(
        &["seed", "--dsn", &dsn, "--pgbench"],
        &[("SSL_CERT_FILE", t.other_ca.as_path())],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[test]
fn the_authentication_exchange_is_recorded_on_every_server_version() {
    let t = tls();
    let security = |extra: &str| {
        let target = pgstorm::target::resolve(Some(&dsn(t, "verify-full", extra)))
            .unwrap()
            .unwrap();
        let mut c = target.connect().unwrap();
        let version: String = c.query_one("SHOW server_version_num", &[]).unwrap().get(0);
        let mut security = pgstorm::connector::SessionSecurity::read(
            &mut c,
            &target.connector,
            version.parse().unwrap(),
        )
        .unwrap();
        security.auth_exchange = pgstorm::connector::SessionSecurity::probe_auth_exchange(
            &target.connector,
            &target.config,
        );
        security
    };
    let scram = security("user=scramuser password=scram-s3cret");
    assert_eq!(scram.auth_exchange.as_deref(), Some("SCRAM-SHA-256-PLUS"));
    let unbound = security("user=scramuser password=scram-s3cret channel_binding=disable");
    assert_eq!(unbound.auth_exchange.as_deref(), Some("SCRAM-SHA-256"));
    let cert = security(&format!(
        "user=certuser sslcert={} sslkey={}",
        t.client_cert.display(),
        t.client_key.display()
    ));
    assert_eq!(cert.auth_exchange.as_deref(), Some("none"));
    assert!(
        cert.client_dn
            .as_deref()
            .is_some_and(|dn| dn.contains("certuser")),
        "{cert:?}"
    );
    let trust = security("");
    assert_eq!(
        (trust.auth_exchange.as_deref(), trust.client_dn.as_deref()),
        (Some("none"), None)
    );
}

#[test]
fn the_blocking_connector_keeps_a_tls_connection_polling() {
    let t = tls();
    let target = pgstorm::target::resolve(Some(&dsn(t, "verify-full", "")))
        .unwrap()
        .unwrap();
    let (w, names) = common::select_one_workload();
    let mut conn = pgstorm::engine::wire_pool::connect_wire(&target, "", &w, &names).unwrap();
    // rustls may hold decrypted bytes a blocking read would sleep past: the socket stays
    // nonblocking and the wait stays a poll (tests/wire.rs has the plain socket's case).
    // SAFETY: F_GETFL on a socket this connection owns.
    let flags = unsafe { libc::fcntl(conn.as_raw_fd(), libc::F_GETFL) };
    assert!(flags & libc::O_NONBLOCK != 0);
    conn.queue_query_with(|b| b.push_bytes(b"SELECT 1"));
    assert_eq!(conn.exchange_blocking(|_| {}).unwrap(), b'I');
}
