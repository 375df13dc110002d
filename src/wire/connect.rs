//! The blocking side of a [`WireConn`]: opening the socket (TCP or Unix-domain, host by host),
//! TLS as the connector's sslmode says (libpq's order of attempts, see [`attempts`]), the startup
//! message, authentication (cleartext, md5, SCRAM-SHA-256 and -PLUS through
//! `postgres_protocol`), the session SQL, [`WireConn::prepare_blocking`], and the blocking
//! exchange of a thread that owns its connection ([`WireConn::exchange_blocking`]).
//!
//! Split from the nonblocking hot path in the parent module because, but for the blocking
//! exchange, it runs once per connection, not per query; it is the only code here that
//! waits on the socket.
//!
//! Invariants: `config.get_connect_timeout()` bounds each host's connect + authentication; the
//! socket is left nonblocking with TCP_NODELAY (a blocking owner then makes a plain socket
//! blocking with [`WireConn::block_on_reads`]); a password never reaches a [`WireError`] (the
//! errors built here carry only server messages, user names and our own texts).

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use postgres::config::Host;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{
    ChannelBinding, ScramSha256, SCRAM_SHA_256, SCRAM_SHA_256_PLUS,
};

use super::decode::{decode, Msg, Reader};
use super::tls::{negotiate, Negotiated};
use super::{protocol, server_error, AuthExchange, Stream, WireConn, WireError};
use crate::connector::{Connector, SslMode};

/// Protocol version 3.0.
const PROTOCOL_VERSION: i32 = 196_608;

impl WireConn {
    /// Blocking: connects (with TLS as `tls` says), authenticates, runs `session_sql` (if not
    /// empty) and leaves the socket nonblocking. Hosts are tried in order while the failure is
    /// I/O (refused, timeout); a server, TLS or authentication error is returned at once.
    /// `config.get_connect_timeout()` bounds each host's connect + TLS + authentication; the
    /// session SQL has no timeout (as with libpq).
    pub fn connect(
        config: &postgres::Config,
        tls: &Connector,
        session_sql: &str,
    ) -> Result<WireConn, WireError> {
        let user = config.get_user().ok_or_else(|| {
            WireError::Auth("no user name in the connection settings (set PGUSER or --dsn)".into())
        })?;
        let timeout = config.get_connect_timeout().copied();
        let n = config.get_hosts().len().max(config.get_hostaddrs().len());
        if n == 0 {
            return Err(WireError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no host in the connection settings",
            )));
        }
        let mut last = None;
        for i in 0..n {
            let deadline = timeout.map(|t| Instant::now() + t);
            let port = crate::target::port_of(config, i);
            let mut attempt = Err(protocol("no connection attempt"));
            for &step in attempts(tls.settings().mode) {
                attempt = open_stream(config, i, port, deadline)
                    .and_then(|stream| secure(stream, config, i, tls, step, deadline))
                    .and_then(|stream| {
                        let mut conn = WireConn::new(stream);
                        conn.startup(config, user, deadline)?;
                        conn.check_session_attrs(config)?;
                        Ok(conn)
                    });
                // libpq tries the next way only when the server itself refused the session.
                if !matches!(attempt, Err(WireError::Server { .. })) {
                    break;
                }
            }
            match attempt {
                Ok(mut conn) => {
                    conn.run_session_sql(session_sql)?;
                    return Ok(conn);
                }
                Err(e @ WireError::Io(_)) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| protocol("no host to try")))
    }

    /// Blocking (right after connect, or while no query is in flight): Parse a named statement
    /// with no parameter types, Sync, and wait for ReadyForQuery. ErrorResponse -> `Server`.
    pub fn prepare_blocking(&mut self, name: &str, sql: &str) -> Result<(), WireError> {
        self.queue_parse(name, sql);
        self.queue_sync();
        self.roundtrip_blocking()
    }

    /// Blocking: the next message's tag and body range in `inp` (valid until the next fill).
    fn recv_blocking(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<(u8, std::ops::Range<usize>), WireError> {
        loop {
            if let Some((tag, len)) = self.complete_frame()? {
                let body = self.in_start + 5..self.in_start + 1 + len;
                self.in_start = body.end;
                return Ok((tag, body));
            }
            if self.fill()? == 0 {
                wait_fd(self.stream.fd(), libc::POLLIN, deadline)?;
            }
        }
    }

    fn flush_blocking(&mut self, deadline: Option<Instant>) -> Result<(), WireError> {
        while !self.flush()? {
            wait_fd(self.stream.fd(), libc::POLLOUT, deadline)?;
        }
        Ok(())
    }

    /// For a thread that owns the connection and only exchanges blocking (the engine's connector
    /// for blocking owners calls it):
    /// puts a plain (TCP or Unix) socket into blocking mode, so that waiting for a reply is the
    /// read itself, one system call per reply instead of poll + read. Over TLS the socket stays
    /// nonblocking and the wait stays a poll (rustls may hold plaintext poll cannot see).
    /// Returns whether reads now block. After this, [`read_available`](WireConn::read_available)
    /// blocks when no complete message is buffered: call it only when a reply is due.
    pub fn block_on_reads(&mut self) -> Result<bool, WireError> {
        self.blocking = self.stream.set_blocking()?;
        Ok(self.blocking)
    }

    /// Blocking, for a thread that owns the connection: sends what is queued,
    /// then waits until the socket has something to read, so that
    /// [`read_available`](WireConn::read_available) has work.
    pub fn await_reply(&mut self) -> Result<(), WireError> {
        self.flush_blocking(None)?;
        // A blocking socket waits inside the read itself: no poll before it.
        if !self.blocking && !self.has_buffered_message() {
            wait_fd(self.stream.fd(), libc::POLLIN, None)?;
        }
        Ok(())
    }

    /// Blocking: sends what is queued and reads up to ReadyForQuery, whose status it returns;
    /// the messages before it go to `on_msg`.
    pub fn exchange_blocking(&mut self, mut on_msg: impl FnMut(Msg<'_>)) -> Result<u8, WireError> {
        loop {
            self.await_reply()?;
            if let Some(status) = self.read_available(&mut on_msg)? {
                return Ok(status);
            }
        }
    }

    fn roundtrip_blocking(&mut self) -> Result<(), WireError> {
        self.flush_blocking(None)?;
        let mut first_error = None;
        loop {
            let (tag, body) = self.recv_blocking(None)?;
            match decode(tag, &self.inp[body])? {
                Msg::Error { sqlstate, message } if first_error.is_none() => {
                    first_error = Some(server_error(sqlstate, message));
                }
                Msg::Ready(_) => break,
                _ => {}
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// `target_session_attrs=read-write`: refuses a session in which writes are not possible (a
    /// standby, or `default_transaction_read_only`), as libpq and the pool driver do, with an I/O
    /// error so that the next host is tried.
    fn check_session_attrs(&mut self, config: &postgres::Config) -> Result<(), WireError> {
        use postgres::config::TargetSessionAttrs;
        if config.get_target_session_attrs() != TargetSessionAttrs::ReadWrite {
            return Ok(());
        }
        self.queue_query_with(|b| b.push_bytes(b"SHOW transaction_read_only"));
        self.flush_blocking(None)?;
        let mut read_only = false;
        let mut first_error = None;
        loop {
            let (tag, body) = self.recv_blocking(None)?;
            match decode(tag, &self.inp[body])? {
                Msg::DataRow(d) => read_only |= d.values().next().flatten() == Some(b"on"),
                Msg::Error { sqlstate, message } if first_error.is_none() => {
                    first_error = Some(server_error(sqlstate, message));
                }
                Msg::Ready(_) => break,
                _ => {}
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if read_only {
            return Err(io::Error::other(
                "the server only accepts read-only transactions (target_session_attrs=read-write)",
            )
            .into());
        }
        Ok(())
    }

    fn run_session_sql(&mut self, sql: &str) -> Result<(), WireError> {
        if sql.trim().is_empty() {
            return Ok(());
        }
        self.queue_query_with(|b| b.push_bytes(sql.as_bytes()));
        self.roundtrip_blocking()
    }

    /// StartupMessage, authentication, then everything up to the first ReadyForQuery.
    fn startup(
        &mut self,
        config: &postgres::Config,
        user: &str,
        deadline: Option<Instant>,
    ) -> Result<(), WireError> {
        self.out.extend_from_slice(&[0; 4]);
        self.out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        let app = config.get_application_name().unwrap_or("pgstorm");
        let mut params = vec![
            ("user", user),
            ("database", config.get_dbname().unwrap_or(user)),
            ("application_name", app),
            // Every text we hand out is &str: make the server send UTF-8.
            ("client_encoding", "UTF8"),
        ];
        if let Some(options) = config.get_options() {
            params.push(("options", options));
        }
        for (k, v) in params {
            self.push_cstr(k);
            self.push_cstr(v);
        }
        self.out.push(0);
        let len = self.out.len() as i32;
        self.out[..4].copy_from_slice(&len.to_be_bytes());
        self.flush_blocking(deadline)?;

        let mut scram: Option<ScramSha256> = None;
        loop {
            let (tag, body) = self.recv_blocking(deadline)?;
            match tag {
                b'R' => {
                    let body = self.inp[body].to_vec();
                    self.authenticate(config, user, &body, &mut scram)?;
                    self.flush_blocking(deadline)?;
                }
                b'K' => {
                    let b = &self.inp[body];
                    if b.len() < 4 {
                        return Err(protocol("short BackendKeyData"));
                    }
                    self.backend_pid = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                }
                b'E' => {
                    if let Msg::Error { sqlstate, message } = decode(tag, &self.inp[body])? {
                        return Err(server_error(sqlstate, message));
                    }
                }
                b'Z' => return Ok(()),
                // ParameterStatus, NoticeResponse, NegotiateProtocolVersion: nothing to act on.
                _ => {}
            }
        }
    }

    /// Answers one Authentication* message (queues the reply, if any).
    fn authenticate(
        &mut self,
        config: &postgres::Config,
        user: &str,
        body: &[u8],
        scram: &mut Option<ScramSha256>,
    ) -> Result<(), WireError> {
        let mut r = Reader(body);
        let code = r
            .i32()
            .ok_or_else(|| protocol("short Authentication message"))?;
        let password = || {
            config.get_password().ok_or_else(|| {
                WireError::Auth(format!(
                    "the server asks for a password for user \"{user}\" but none was given \
                     (set PGPASSWORD or put it in --dsn)"
                ))
            })
        };
        match code {
            0 => {}
            3 => {
                self.auth = AuthExchange::Password;
                let pw = password()?;
                let start = self.begin_msg(b'p');
                self.out.extend_from_slice(pw);
                self.out.push(0);
                self.end_msg(start);
            }
            5 => {
                let salt: [u8; 4] = r
                    .bytes(4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| protocol("short AuthenticationMD5Password"))?;
                self.auth = AuthExchange::Md5;
                let hash = md5_hash(user.as_bytes(), password()?, salt);
                let start = self.begin_msg(b'p');
                self.push_cstr(&hash);
                self.end_msg(start);
            }
            10 => {
                let (mut scram_offered, mut plus_offered) = (false, false);
                while let Some(mech) = r.cstr() {
                    if mech.is_empty() {
                        break;
                    }
                    scram_offered |= mech == SCRAM_SHA_256;
                    plus_offered |= mech == SCRAM_SHA_256_PLUS;
                }
                // As tokio-postgres (the pool driver) decides: bind to the TLS session when the
                // server offers -PLUS, tell it we could ("y") when it does not.
                use postgres::config::ChannelBinding as Wanted;
                let end_point = self
                    .stream
                    .server_end_point()
                    .filter(|_| config.get_channel_binding() != Wanted::Disable);
                let (binding, mechanism) = match end_point {
                    Some(ep) if plus_offered => {
                        (ChannelBinding::tls_server_end_point(ep), SCRAM_SHA_256_PLUS)
                    }
                    Some(_) if scram_offered => (ChannelBinding::unrequested(), SCRAM_SHA_256),
                    None if scram_offered => (ChannelBinding::unsupported(), SCRAM_SHA_256),
                    _ => {
                        return Err(WireError::Auth(
                            "the server offers no SASL mechanism this client supports \
                             (SCRAM-SHA-256 or SCRAM-SHA-256-PLUS)"
                                .into(),
                        ))
                    }
                };
                if mechanism != SCRAM_SHA_256_PLUS
                    && config.get_channel_binding() == Wanted::Require
                {
                    return Err(WireError::Auth(
                        "channel_binding=require but the session cannot bind (no TLS, or the \
                         server does not offer SCRAM-SHA-256-PLUS)"
                            .into(),
                    ));
                }
                self.auth = if mechanism == SCRAM_SHA_256_PLUS {
                    AuthExchange::ScramSha256Plus
                } else {
                    AuthExchange::ScramSha256
                };
                let s = ScramSha256::new(password()?, binding);
                let start = self.begin_msg(b'p');
                self.push_cstr(mechanism);
                let first = s.message();
                self.out
                    .extend_from_slice(&(first.len() as i32).to_be_bytes());
                self.out.extend_from_slice(first);
                self.end_msg(start);
                *scram = Some(s);
            }
            11 => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| protocol("SASLContinue before SASL"))?;
                s.update(r.0)
                    .map_err(|e| WireError::Auth(format!("SCRAM exchange failed: {e}")))?;
                let start = self.begin_msg(b'p');
                self.out.extend_from_slice(s.message());
                self.end_msg(start);
            }
            12 => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| protocol("SASLFinal before SASL"))?;
                s.finish(r.0).map_err(|e| {
                    WireError::Auth(format!("the server's SCRAM signature did not verify: {e}"))
                })?;
            }
            other => {
                return Err(WireError::Auth(format!(
                    "unsupported authentication method (code {other}); use trust, password, md5 \
                     or scram-sha-256 in pg_hba.conf"
                )))
            }
        }
        Ok(())
    }
}

/// One way of opening the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// No SSLRequest.
    Plain,
    /// SSLRequest; plaintext if the server declines.
    TlsIfOffered,
    /// SSLRequest; an error if the server declines.
    TlsOnly,
}

/// libpq's order of attempts per sslmode; the next is tried when the server refuses a session.
fn attempts(mode: SslMode) -> &'static [Step] {
    match mode {
        SslMode::Disable => &[Step::Plain],
        SslMode::Allow => &[Step::Plain, Step::TlsOnly],
        SslMode::Prefer => &[Step::TlsIfOffered, Step::Plain],
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => &[Step::TlsOnly],
    }
}

/// Negotiates TLS on a TCP stream as `step` says (Unix-domain sockets stay plain, as in libpq).
fn secure(
    stream: Stream,
    config: &postgres::Config,
    i: usize,
    tls: &Connector,
    step: Step,
    deadline: Option<Instant>,
) -> Result<Stream, WireError> {
    let rustls = match (tls.rustls(), step) {
        (Some(r), Step::TlsIfOffered | Step::TlsOnly) => r,
        _ => return Ok(stream),
    };
    let sock = match stream {
        Stream::Tcp(s) => s,
        other => return Ok(other),
    };
    let host = match (config.get_hosts().get(i), config.get_hostaddrs().get(i)) {
        (Some(Host::Tcp(h)), _) => h.clone(),
        (_, Some(addr)) => addr.to_string(),
        _ => String::new(),
    };
    match negotiate(sock, rustls, &host, deadline)? {
        Negotiated::Tls(s) => Ok(Stream::Tls(s)),
        Negotiated::Refused(_) if step == Step::TlsOnly => Err(WireError::Tls(
            "the server does not support TLS (sslmode requires it): enable ssl on the server \
             or lower sslmode"
                .into(),
        )),
        Negotiated::Refused(sock) => Ok(Stream::Tcp(sock)),
    }
}

/// Waits until `fd` has `events`, or fails with TimedOut at `deadline`.
pub(super) fn wait_fd(
    fd: RawFd,
    events: libc::c_short,
    deadline: Option<Instant>,
) -> Result<(), WireError> {
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "timed out waiting for the server (connect_timeout)",
                    )
                    .into());
                }
                left.as_millis().clamp(1, i32::MAX as u128) as i32
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if rc > 0 {
            return Ok(());
        }
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
    }
}

/// Opens host `i` of the config (a Unix socket for a directory host), nonblocking, TCP_NODELAY.
fn open_stream(
    config: &postgres::Config,
    i: usize,
    port: u16,
    deadline: Option<Instant>,
) -> Result<Stream, WireError> {
    let with_target = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    let stream = match (config.get_hosts().get(i), config.get_hostaddrs().get(i)) {
        (Some(Host::Unix(dir)), _) => {
            let path = dir.join(format!(".s.PGSQL.{port}"));
            let s = UnixStream::connect(&path)
                .map_err(|e| with_target(&format!("connect to {}", path.display()), e))?;
            s.set_nonblocking(true)?;
            Stream::Unix(s)
        }
        (host, addr) => {
            let name = match host {
                Some(Host::Tcp(h)) => h.clone(),
                _ => addr.map(|a| a.to_string()).unwrap_or_default(),
            };
            let what = format!("connect to {name}:{port}");
            let addrs: Vec<SocketAddr> = match addr {
                Some(ip) => vec![SocketAddr::new(*ip, port)],
                None => (name.as_str(), port)
                    .to_socket_addrs()
                    .map_err(|e| with_target(&what, e))?
                    .collect(),
            };
            let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
            let mut connected = None;
            for a in addrs {
                let r = match deadline {
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        TcpStream::connect_timeout(&a, left.max(Duration::from_millis(1)))
                    }
                    None => TcpStream::connect(a),
                };
                match r {
                    Ok(s) => {
                        connected = Some(s);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            let s = connected.ok_or_else(|| with_target(&what, last))?;
            s.set_nodelay(true)?;
            s.set_nonblocking(true)?;
            Stream::Tcp(s)
        }
    };
    Ok(stream)
}
