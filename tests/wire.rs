//! The multiplexed driver's wire connection against a real sandbox server: authentication methods,
//! the extended-protocol hot path, error and transaction states, and connection loss.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pgstorm::wire::{Msg, WireConn, WireError};

/// Messages seen up to ReadyForQuery, as text, and the transaction status.
fn read_until_ready(conn: &mut WireConn) -> Result<(Vec<String>, u8), WireError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        while conn.wants_write() {
            if !conn.flush()? {
                wait(conn, libc::POLLOUT, deadline);
            }
        }
        let status = conn.read_available(|m| seen.push(describe(m)))?;
        if let Some(status) = status {
            return Ok((seen, status));
        }
        if !conn.has_buffered_message() {
            wait(conn, libc::POLLIN, deadline);
        }
    }
}

fn wait(conn: &WireConn, events: libc::c_short, deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    assert!(!left.is_zero(), "no reply from the server within 10 s");
    let mut pfd = libc::pollfd {
        fd: conn.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
}

fn describe(m: Msg<'_>) -> String {
    match m {
        Msg::RowDescription(t) => format!("T {}", t.names().collect::<Vec<_>>().join(",")),
        Msg::DataRow(d) => format!(
            "D {}",
            d.values()
                .map(|v| v.map_or("NULL".into(), |b| String::from_utf8_lossy(b).into_owned()))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Msg::CommandComplete(tag) => format!("C {tag}"),
        Msg::Error { sqlstate, .. } => format!("E {sqlstate}"),
        Msg::Ready(s) => format!("Z {}", s as char),
        Msg::EmptyQuery => "I".into(),
        Msg::Other(tag) => format!("{}", tag as char),
    }
}

fn query(conn: &mut WireConn, sql: &str) -> (Vec<String>, u8) {
    conn.queue_query_with(|b| b.push_bytes(sql.as_bytes()));
    read_until_ready(conn).unwrap()
}

/// Connects with the connector a plain sandbox target gets (sslmode=prefer: the sandbox declines).
fn connect(config: &postgres::Config, session_sql: &str) -> Result<WireConn, WireError> {
    let target =
        pgstorm::target::Target::new(config.clone(), pgstorm::target::TargetSource::Sandbox);
    WireConn::connect(config, &target.connector, session_sql)
}

fn trust_conn() -> WireConn {
    connect(&common::sandbox().pg_config(), "").unwrap()
}

/// Sandbox config for a role that logs in with a password over TCP.
fn password_config(user: &str, password: &str) -> postgres::Config {
    password_roles();
    let mut c = common::sandbox().pg_config();
    c.user(user).password(password);
    c
}

/// Creates `scramuser` (SCRAM) and `md5user` (md5-stored password) with pg_hba lines that make
/// the server ask them for a password; once per test binary, as tests run concurrently.
fn password_roles() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let sb = common::sandbox();
        let mut c = common::client();
        c.batch_execute(
            "SET password_encryption = 'scram-sha-256';
             CREATE ROLE scramuser LOGIN PASSWORD 'scram-right';
             SET password_encryption = 'md5';
             CREATE ROLE md5user LOGIN PASSWORD 'md5-right';",
        )
        .unwrap();
        // The md5 test must exercise the md5 exchange: the server only uses it for md5 hashes.
        let stored: String = c
            .query_one(
                "SELECT rolpassword FROM pg_authid WHERE rolname = 'md5user'",
                &[],
            )
            .unwrap()
            .get(0);
        assert!(
            stored.starts_with("md5"),
            "md5user's password is not md5-hashed"
        );
        let hba = sb.data_dir().join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(
            &hba,
            format!(
                "host all scramuser 127.0.0.1/32 scram-sha-256\n\
                 host all md5user 127.0.0.1/32 md5\n{old}"
            ),
        )
        .unwrap();
        c.batch_execute("SELECT pg_reload_conf()").unwrap();
        std::thread::sleep(Duration::from_millis(300));
    });
}

#[test]
fn trust_login_runs_session_sql_and_simple_queries() {
    let mut conn = connect(
        &common::sandbox().pg_config(),
        "SET statement_timeout = '1234ms'",
    )
    .unwrap();
    assert!(conn.backend_pid() > 0);
    let (seen, status) = query(&mut conn, "SHOW statement_timeout");
    assert_eq!(seen, ["T statement_timeout", "D 1234ms", "C SHOW", "Z I"]);
    assert_eq!(status, b'I');
    let (seen, _) = query(&mut conn, "");
    assert_eq!(seen, ["I", "Z I"]);
}

#[test]
fn session_sql_error_fails_the_connect() {
    let err = connect(&common::sandbox().pg_config(), "SET no_such_setting = 1").unwrap_err();
    assert_eq!(err.sqlstate(), Some("42704"), "{err}");
}

#[test]
fn unix_socket_directory_host_connects() {
    let sb = common::sandbox();
    let mut config = postgres::Config::new();
    config
        .host_path(sb.socket_dir())
        .port(sb.port())
        .user(sb.user())
        .dbname(sb.dbname());
    let mut conn = connect(&config, "").unwrap();
    let (seen, _) = query(&mut conn, "SELECT 'unix'");
    assert_eq!(seen[1], "D unix");
}

#[test]
fn prepared_statement_bind_execute_returns_text_values() {
    let mut conn = trust_conn();
    conn.prepare_blocking("add_one", "SELECT $1::int + 1, 'x'::text AS t")
        .unwrap();
    // Twice in one pipeline, one Sync: the second Bind reuses the same output buffer.
    for v in [41, 99] {
        conn.begin_bind("add_one", 1);
        conn.bind_text(|b| b.push_i64(v));
        conn.end_bind();
        conn.queue_describe_portal();
        conn.queue_execute();
    }
    conn.queue_sync();
    let (seen, status) = read_until_ready(&mut conn).unwrap();
    assert_eq!(
        seen,
        [
            "2",
            "T ?column?,t",
            "D 42,x",
            "C SELECT 1",
            "2",
            "T ?column?,t",
            "D 100,x",
            "C SELECT 1",
            "Z I"
        ]
    );
    assert_eq!(status, b'I');

    // A NULL parameter comes back as NULL.
    conn.begin_bind("add_one", 1);
    conn.bind_null();
    conn.end_bind();
    conn.queue_execute();
    conn.queue_sync();
    let (seen, _) = read_until_ready(&mut conn).unwrap();
    assert_eq!(seen, ["2", "D NULL,x", "C SELECT 1", "Z I"]);
}

#[test]
fn prepare_error_is_a_server_error_and_the_connection_stays_usable() {
    let mut conn = trust_conn();
    let err = conn.prepare_blocking("bad", "SELEKT 1").unwrap_err();
    assert_eq!(err.sqlstate(), Some("42601"), "{err}");
    assert!(!err.is_connection_loss());
    let (seen, _) = query(&mut conn, "SELECT 5");
    assert_eq!(seen[1], "D 5");
}

#[test]
fn division_by_zero_gives_error_then_ready_idle() {
    let mut conn = trust_conn();
    conn.prepare_blocking("div", "SELECT 1/0").unwrap();
    conn.begin_bind("div", 0);
    conn.end_bind();
    conn.queue_execute();
    conn.queue_sync();
    let (seen, status) = read_until_ready(&mut conn).unwrap();
    // The constant 1/0 may fail at Bind (before BindComplete '2') or at Execute.
    let seen: Vec<&str> = seen
        .iter()
        .map(String::as_str)
        .filter(|m| *m != "2")
        .collect();
    assert_eq!(seen, ["E 22012", "Z I"]);
    assert_eq!(status, b'I');
}

#[test]
fn failed_statement_inside_begin_gives_ready_in_failed_transaction() {
    let mut conn = trust_conn();
    assert_eq!(query(&mut conn, "BEGIN").1, b'T');
    let (seen, status) = query(&mut conn, "SELECT 1/0");
    assert_eq!(seen, ["E 22012", "Z E"]);
    assert_eq!(status, b'E');
    let (seen, status) = query(&mut conn, "SELECT 1");
    assert_eq!(seen, ["E 25P02", "Z E"]);
    assert_eq!(status, b'E');
    assert_eq!(query(&mut conn, "ROLLBACK").1, b'I');
}

#[test]
fn scram_login_works_and_a_wrong_password_is_28p01_never_echoed() {
    let mut conn = connect(&password_config("scramuser", "scram-right"), "").unwrap();
    let (seen, _) = query(&mut conn, "SELECT current_user");
    assert_eq!(seen[1], "D scramuser");
    // Without TLS there is nothing to bind to: channel_binding=require refuses before SCRAM.
    let mut config = password_config("scramuser", "scram-right");
    config.channel_binding(postgres::config::ChannelBinding::Require);
    match connect(&config, "") {
        Err(WireError::Auth(msg)) => assert!(msg.contains("cannot bind"), "{msg}"),
        other => panic!("expected an Auth error, got {:?}", other.map(|_| ())),
    }

    let err = connect(&password_config("scramuser", "scram-WRONG-guess"), "").unwrap_err();
    assert_eq!(err.sqlstate(), Some("28P01"), "{err}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(
        !text.contains("scram-WRONG-guess"),
        "password leaked: {text}"
    );
    assert!(!err.is_connection_loss());
}

#[test]
fn md5_login_works_and_a_wrong_password_is_28p01() {
    let mut conn = connect(&password_config("md5user", "md5-right"), "").unwrap();
    let (seen, _) = query(&mut conn, "SELECT current_user");
    assert_eq!(seen[1], "D md5user");

    let err = connect(&password_config("md5user", "md5-wrong"), "").unwrap_err();
    assert_eq!(err.sqlstate(), Some("28P01"), "{err}");
    assert!(!format!("{err} {err:?}").contains("md5-wrong"));
}

#[test]
fn password_requested_but_none_given_is_an_auth_error() {
    password_roles();
    let mut config = common::sandbox().pg_config();
    config.user("scramuser");
    match connect(&config, "") {
        Err(WireError::Auth(msg)) => assert!(msg.contains("password"), "{msg}"),
        other => panic!("expected an Auth error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn refused_connection_is_an_io_connection_loss() {
    // Port 1 on loopback: nothing listens there.
    let mut config = postgres::Config::new();
    config.host("127.0.0.1").port(1).user("nobody");
    let err = connect(&config, "").unwrap_err();
    assert!(matches!(err, WireError::Io(_)), "{err}");
    assert!(err.is_connection_loss());
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

#[test]
fn terminated_backend_is_a_connection_loss_on_the_next_read() {
    let mut conn = trust_conn();
    let pid = conn.backend_pid();
    let terminated: bool = common::client()
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap()
        .get(0);
    assert!(terminated);
    conn.queue_query_with(|b| b.push_bytes(b"SELECT 1"));
    let mut seen = Vec::new();
    let err = loop {
        match read_until_ready(&mut conn) {
            Ok((msgs, _)) => seen.extend(msgs),
            Err(e) => break e,
        }
    };
    assert!(err.is_connection_loss(), "{err}");
    // The server says why before it closes: FATAL 57P01 (admin shutdown), if it got that far.
    assert!(seen.iter().all(|m| m == "E 57P01"), "{seen:?}");
}

#[test]
fn read_write_target_session_attrs_refuse_a_read_only_session() {
    let mut c = common::client();
    c.batch_execute(
        "CREATE ROLE rouser LOGIN; ALTER ROLE rouser SET default_transaction_read_only = on",
    )
    .unwrap();
    let mut config = common::sandbox().pg_config();
    config.user("rouser");
    // Positive control: without the attribute the read-only session is accepted.
    connect(&config, "").unwrap();
    config.target_session_attrs(postgres::config::TargetSessionAttrs::ReadWrite);
    let err = connect(&config, "").unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    // The pool driver refuses it the same way.
    assert!(config.connect(postgres::NoTls).is_err());
}

fn nonblocking(c: &WireConn) -> bool {
    // SAFETY: F_GETFL on a socket this connection owns.
    let flags = unsafe { libc::fcntl(c.as_raw_fd(), libc::F_GETFL) };
    flags & libc::O_NONBLOCK != 0
}

#[test]
fn the_blocking_connector_blocks_plain_reads_and_the_polled_one_does_not() {
    use pgstorm::engine::wire_pool::{connect_polled, connect_wire};
    let target = pgstorm::target::Target::new(
        common::sandbox().pg_config(),
        pgstorm::target::TargetSource::Sandbox,
    );
    let (w, names) = common::select_one_workload();
    // The -j driver's connection stays nonblocking: the control.
    let polled = connect_polled(&target, "", &w, &names).unwrap();
    assert!(nonblocking(&polled));
    // Every blocking owner's connection reads blocking, and serves the script.
    let mut conn = connect_wire(&target, "", &w, &names).unwrap();
    assert!(!nonblocking(&conn));
    let script = w.types[0].script();
    let ended = script.run_blocking(
        &mut Default::default(),
        &mut script.client_vars(0),
        &mut pgstorm::rng::Rng::new(1),
        w.protocol,
        &names[0],
        &mut conn,
        None,
    );
    ended.result.unwrap();
    assert!(ended.reusable);
}
