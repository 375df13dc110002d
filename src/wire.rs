//! A lean PostgreSQL wire-protocol (v3) connection for the multiplexed driver: one thread drives
//! many of these over nonblocking sockets and poll(2), as pgbench does.
//!
//! Connecting (startup, authentication, session SQL) and [`WireConn::prepare_blocking`] block the
//! calling thread; everything after is nonblocking: the caller encodes messages into the output
//! buffer (`queue_*`, `begin_bind`..`end_bind`), pushes them with [`WireConn::flush`] when poll
//! says writable, and hands replies to a closure with [`WireConn::read_available`] when poll says
//! readable.
//!
//! Invariants:
//! - No allocation per query once connected: one output and one input `Vec<u8>` per connection,
//!   reused; they only grow when a message is larger than any before. Replies are parsed in place
//!   and handed out as borrowed [`Msg`] views.
//! - A hostile or broken server (bad lengths, truncated fields, invalid UTF-8) yields
//!   [`WireError::Protocol`], never a panic, and cannot make us allocate more than it actually
//!   sent (messages are capped at 1 GiB, like libpq).
//! - A password never appears in a [`WireError`] (only server messages and our own texts do).
//!
//! Authentication uses `postgres_protocol` (the rust-postgres family's md5/SCRAM code, already
//! compiled into pgstorm through the `postgres` crate); TLS is not supported.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use postgres::config::{Host, SslMode};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};

/// Largest backend message accepted (libpq's limit): a bigger length means a broken stream.
const MAX_MESSAGE_LEN: usize = 1 << 30;
/// Initial input buffer size; also the size it is grown by at least.
const INPUT_START: usize = 16 * 1024;
/// Below this much free space at the end of the input buffer, compact (or grow) before a read.
const MIN_READ: usize = 4 * 1024;
/// Protocol version 3.0.
const PROTOCOL_VERSION: i32 = 196_608;

/// What went wrong on a connection.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed, timed out or was closed (EOF is `UnexpectedEof`).
    #[error("connection I/O error: {0}")]
    Io(#[from] io::Error),
    /// The server answered with an ErrorResponse.
    #[error("server error: {message} (SQLSTATE {sqlstate})")]
    Server {
        /// The five-character SQLSTATE, e.g. "28P01".
        sqlstate: String,
        /// The server's primary message.
        message: String,
    },
    /// Authentication could not proceed on our side (no password, unsupported method, bad SCRAM).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The server sent something this client cannot make sense of; the connection is unusable.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl WireError {
    /// The SQLSTATE of a server error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            WireError::Server { sqlstate, .. } => Some(sqlstate),
            _ => None,
        }
    }

    /// Whether the connection is gone: I/O or protocol failure, class 08, or a shutdown (57P01..3).
    pub fn is_connection_loss(&self) -> bool {
        match self {
            WireError::Io(_) | WireError::Protocol(_) => true,
            WireError::Server { sqlstate, .. } => is_connection_loss_state(sqlstate),
            WireError::Auth(_) => false,
        }
    }
}

/// SQLSTATE class 08 (connection exception) or 57P01..57P03 (admin/crash shutdown, cannot connect).
pub fn is_connection_loss_state(sqlstate: &str) -> bool {
    sqlstate.starts_with("08") || matches!(sqlstate, "57P01" | "57P02" | "57P03")
}

fn protocol(what: &str) -> WireError {
    WireError::Protocol(what.to_string())
}

/// The socket: TCP or a Unix-domain socket.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

/// One connection: the socket plus its reused output and input buffers.
pub struct WireConn {
    stream: Stream,
    /// Encoded messages; `out[out_sent..]` is not yet written.
    out: Vec<u8>,
    out_sent: usize,
    /// Start of the Bind message being built, for back-patching its length.
    bind_start: Option<usize>,
    /// Received bytes live in `inp[in_start..in_end]`; the rest of `inp` is free space.
    inp: Vec<u8>,
    in_start: usize,
    in_end: usize,
    backend_pid: i32,
}

impl fmt::Debug for WireConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WireConn(pid {})", self.backend_pid)
    }
}

impl WireConn {
    fn new(stream: Stream) -> WireConn {
        WireConn {
            stream,
            out: Vec::with_capacity(4096),
            out_sent: 0,
            bind_start: None,
            inp: vec![0; INPUT_START],
            in_start: 0,
            in_end: 0,
            backend_pid: 0,
        }
    }

    /// Blocking: connects, authenticates, runs `session_sql` (if not empty) and leaves the socket
    /// nonblocking. Hosts are tried in order while the failure is I/O (refused, timeout); a server
    /// or authentication error is returned at once. `config.get_connect_timeout()` bounds each
    /// host's connect + authentication; the session SQL has no timeout (as with libpq).
    pub fn connect(config: &postgres::Config, session_sql: &str) -> Result<WireConn, WireError> {
        if config.get_ssl_mode() == SslMode::Require {
            return Err(WireError::Auth(
                "sslmode=require is not supported by the multiplexed driver (it speaks plain TCP)"
                    .into(),
            ));
        }
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
            let port = config
                .get_ports()
                .get(i)
                .or(config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            let attempt = open_stream(config, i, port, deadline).and_then(|stream| {
                let mut conn = WireConn::new(stream);
                conn.startup(config, user, deadline)?;
                Ok(conn)
            });
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

    /// The socket, for poll(2).
    pub fn as_raw_fd(&self) -> RawFd {
        self.stream.fd()
    }

    /// The server process id (from BackendKeyData), e.g. for `pg_terminate_backend`.
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    /// Queues Parse of a named statement with no parameter types.
    pub fn queue_parse(&mut self, name: &str, sql: &str) {
        let start = self.begin_msg(b'P');
        self.push_cstr(name);
        self.push_cstr(sql);
        self.out.extend_from_slice(&0i16.to_be_bytes());
        self.end_msg(start);
    }

    /// Starts a Bind of `stmt` to the unnamed portal, all parameters in text format; follow with
    /// exactly `n_params` calls of [`bind_null`](Self::bind_null)/[`bind_text`](Self::bind_text)
    /// and then [`end_bind`](Self::end_bind).
    pub fn begin_bind(&mut self, stmt: &str, n_params: u16) {
        let start = self.begin_msg(b'B');
        self.bind_start = Some(start);
        self.out.push(0);
        self.push_cstr(stmt);
        self.out.extend_from_slice(&0i16.to_be_bytes());
        self.out.extend_from_slice(&n_params.to_be_bytes());
    }

    /// Adds a NULL parameter to the Bind being built.
    pub fn bind_null(&mut self) {
        self.out.extend_from_slice(&(-1i32).to_be_bytes());
    }

    /// Adds a text parameter rendered by `f` to the Bind being built.
    pub fn bind_text(&mut self, f: impl FnOnce(&mut WireBuf)) {
        let at = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        f(&mut WireBuf { out: &mut self.out });
        let len = i32::try_from(self.out.len() - at - 4).expect("a bind value under 2 GiB");
        self.out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// Finishes the Bind: all result columns in text format. Panics without a `begin_bind`.
    pub fn end_bind(&mut self) {
        self.out.extend_from_slice(&0i16.to_be_bytes());
        let start = self.bind_start.take().expect("end_bind without begin_bind");
        self.end_msg(start);
    }

    /// Queues Describe of the unnamed portal (the server answers RowDescription or NoData).
    pub fn queue_describe_portal(&mut self) {
        self.out.extend_from_slice(b"D\0\0\0\x06P\0");
    }

    /// Queues Execute of the unnamed portal, all rows.
    pub fn queue_execute(&mut self) {
        self.out.extend_from_slice(b"E\0\0\0\x09\0\0\0\0\0");
    }

    /// Queues Sync (the server answers ReadyForQuery once everything before it is done).
    pub fn queue_sync(&mut self) {
        self.out.extend_from_slice(b"S\0\0\0\x04");
    }

    /// Queues a simple Query whose SQL text `f` renders.
    pub fn queue_query_with(&mut self, f: impl FnOnce(&mut WireBuf)) {
        let start = self.begin_msg(b'Q');
        f(&mut WireBuf { out: &mut self.out });
        self.out.push(0);
        self.end_msg(start);
    }

    /// Nonblocking: writes as much of the output buffer as the socket takes; `Ok(true)` when all
    /// of it is sent.
    pub fn flush(&mut self) -> Result<bool, WireError> {
        while self.out_sent < self.out.len() {
            match self.stream.write(&self.out[self.out_sent..]) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => self.out_sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.out.clear();
        self.out_sent = 0;
        Ok(true)
    }

    /// Whether queued bytes wait to be written (poll for POLLOUT).
    pub fn wants_write(&self) -> bool {
        self.out_sent < self.out.len()
    }

    /// Nonblocking: unless a complete message is already buffered, does one read() (WouldBlock
    /// is not an error; EOF is `Err(Io(UnexpectedEof))`). Then hands every complete message to
    /// `on_msg` in order, **stopping after the first ReadyForQuery**, whose status (`b'I'`,
    /// `b'T'`, `b'E'`) is returned; what follows it stays buffered for the next call (see
    /// [`has_buffered_message`](Self::has_buffered_message)). `Ok(None)`: no ReadyForQuery yet.
    pub fn read_available(
        &mut self,
        mut on_msg: impl FnMut(Msg<'_>),
    ) -> Result<Option<u8>, WireError> {
        if self.complete_frame()?.is_none() {
            self.fill()?;
        }
        while let Some((tag, len)) = self.complete_frame()? {
            let body = self.in_start + 5..self.in_start + 1 + len;
            self.in_start = body.end;
            let msg = decode(tag, &self.inp[body])?;
            let ready = match msg {
                Msg::Ready(status) => Some(status),
                _ => None,
            };
            on_msg(msg);
            if ready.is_some() {
                return Ok(ready);
            }
        }
        Ok(None)
    }

    /// Whether a complete message (or a broken header, which the next read reports) is buffered,
    /// so [`read_available`](Self::read_available) has work without waiting for the socket.
    pub fn has_buffered_message(&self) -> bool {
        !matches!(self.complete_frame(), Ok(None))
    }

    // ---- internals ----

    fn begin_msg(&mut self, tag: u8) -> usize {
        let start = self.out.len();
        self.out.push(tag);
        self.out.extend_from_slice(&[0; 4]);
        start
    }

    fn end_msg(&mut self, start: usize) {
        let len = i32::try_from(self.out.len() - start - 1).expect("a message under 2 GiB");
        self.out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
    }

    /// Strings must not contain NUL: the server would see a malformed message and reject it.
    fn push_cstr(&mut self, s: &str) {
        debug_assert!(!s.contains('\0'), "NUL inside a protocol string");
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(0);
    }

    /// Tag and length (excluding the tag) of the message at `in_start` if it is fully buffered.
    fn complete_frame(&self) -> Result<Option<(u8, usize)>, WireError> {
        let avail = &self.inp[self.in_start..self.in_end];
        if avail.len() < 5 {
            return Ok(None);
        }
        let len = frame_len(avail)?;
        Ok((avail.len() > len).then_some((avail[0], len)))
    }

    /// One read() into the free space, compacting or growing the buffer first when it is short.
    fn fill(&mut self) -> Result<usize, WireError> {
        if self.in_start == self.in_end {
            self.in_start = 0;
            self.in_end = 0;
        }
        if self.inp.len() - self.in_end < MIN_READ {
            if self.in_start > 0 {
                self.inp.copy_within(self.in_start..self.in_end, 0);
                self.in_end -= self.in_start;
                self.in_start = 0;
            }
            if self.inp.len() - self.in_end < MIN_READ {
                // Doubling only as bytes actually arrive: a lying length cannot make us allocate.
                self.inp.resize(self.inp.len() * 2, 0);
            }
        }
        loop {
            match self.stream.read(&mut self.inp[self.in_end..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    )
                    .into())
                }
                Ok(n) => {
                    self.in_end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
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

    /// Sends what is queued and reads up to ReadyForQuery; the first ErrorResponse is returned.
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
                let hash = md5_hash(user.as_bytes(), password()?, salt);
                let start = self.begin_msg(b'p');
                self.push_cstr(&hash);
                self.end_msg(start);
            }
            10 => {
                let mut offered = false;
                while let Some(mech) = r.cstr() {
                    if mech.is_empty() {
                        break;
                    }
                    offered |= mech == SCRAM_SHA_256;
                }
                if !offered {
                    return Err(WireError::Auth(
                        "the server offers no SASL mechanism this client supports (it needs \
                         SCRAM-SHA-256 without channel binding)"
                            .into(),
                    ));
                }
                let s = ScramSha256::new(password()?, ChannelBinding::unsupported());
                let start = self.begin_msg(b'p');
                self.push_cstr(SCRAM_SHA_256);
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

fn server_error(sqlstate: &str, message: &str) -> WireError {
    WireError::Server {
        sqlstate: sqlstate.to_string(),
        message: message.to_string(),
    }
}

/// Length field of the message header at the start of `avail` (at least 5 bytes), checked.
fn frame_len(avail: &[u8]) -> Result<usize, WireError> {
    let len = i32::from_be_bytes([avail[1], avail[2], avail[3], avail[4]]);
    if len < 4 || len as usize > MAX_MESSAGE_LEN {
        return Err(WireError::Protocol(format!(
            "message '{}' declares length {len}",
            avail[0].escape_ascii()
        )));
    }
    Ok(len as usize)
}

/// Waits until `fd` has `events`, or fails with TimedOut at `deadline`.
fn wait_fd(fd: RawFd, events: libc::c_short, deadline: Option<Instant>) -> Result<(), WireError> {
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
            Stream::Tcp(s)
        }
    };
    match &stream {
        Stream::Tcp(s) => s.set_nonblocking(true)?,
        Stream::Unix(s) => s.set_nonblocking(true)?,
    }
    Ok(stream)
}

/// Appends to a connection's output buffer: `write!` into it, or push raw bytes.
pub struct WireBuf<'a> {
    out: &'a mut Vec<u8>,
}

impl WireBuf<'_> {
    /// Appends raw bytes (they must not contain NUL inside a query text).
    pub fn push_bytes(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    /// Appends an integer in decimal, without going through `fmt`.
    pub fn push_i64(&mut self, v: i64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = v.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if v < 0 {
            self.out.push(b'-');
        }
        self.out.extend_from_slice(&digits[i..]);
    }
}

impl fmt::Write for WireBuf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A backend message, borrowed from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg<'a> {
    /// 'T': column names (and more) of the rows that follow.
    RowDescription(RowDesc<'a>),
    /// 'D': one row.
    DataRow(DataRow<'a>),
    /// 'C': command tag, e.g. "SELECT 1".
    CommandComplete(&'a str),
    /// 'I': the query string was empty.
    EmptyQuery,
    /// 'E': an ErrorResponse (a FATAL one is followed by the server closing the connection).
    Error {
        /// SQLSTATE (field 'C'), "" if the server sent none.
        sqlstate: &'a str,
        /// Primary message (field 'M').
        message: &'a str,
    },
    /// 'Z': ReadyForQuery with the transaction status: b'I' idle, b'T' in a transaction,
    /// b'E' in a failed transaction.
    Ready(u8),
    /// Any other message, by tag (e.g. b'1' ParseComplete, b'2' BindComplete, b'n' NoData,
    /// b'N' NoticeResponse, b'S' ParameterStatus).
    Other(u8),
}

/// A RowDescription, validated when received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowDesc<'a> {
    count: u16,
    fields: &'a [u8],
}

impl<'a> RowDesc<'a> {
    /// Column names, in order.
    pub fn names(&self) -> impl Iterator<Item = &'a str> {
        let mut r = Reader(self.fields);
        (0..self.count).map_while(move |_| {
            let name = r.cstr()?;
            r.bytes(18)?;
            Some(name)
        })
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A DataRow, validated when received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRow<'a> {
    count: u16,
    cols: &'a [u8],
}

impl<'a> DataRow<'a> {
    /// Column values in order (text format), `None` for NULL.
    pub fn values(&self) -> impl Iterator<Item = Option<&'a [u8]>> {
        let mut r = Reader(self.cols);
        (0..self.count).map_while(move |_| r.value())
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A cursor over a message body; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        self.bytes(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn cstr(&mut self) -> Option<&'a str> {
        let nul = self.0.iter().position(|&b| b == 0)?;
        let s = std::str::from_utf8(&self.0[..nul]).ok()?;
        self.0 = &self.0[nul + 1..];
        Some(s)
    }

    /// A DataRow column: length (-1 = NULL) then bytes. Outer `None`: malformed.
    fn value(&mut self) -> Option<Option<&'a [u8]>> {
        match self.i32()? {
            -1 => Some(None),
            n if n >= 0 => self.bytes(n as usize).map(Some),
            _ => None,
        }
    }
}

/// Decodes one message body; malformed content is a protocol error.
fn decode(tag: u8, body: &[u8]) -> Result<Msg<'_>, WireError> {
    let bad = |what: &str| WireError::Protocol(format!("malformed {what} message"));
    let mut r = Reader(body);
    Ok(match tag {
        b'D' => {
            let count = r.u16().ok_or_else(|| bad("DataRow"))?;
            let cols = r.0;
            for _ in 0..count {
                r.value().ok_or_else(|| bad("DataRow"))?;
            }
            Msg::DataRow(DataRow { count, cols })
        }
        b'T' => {
            let count = r.u16().ok_or_else(|| bad("RowDescription"))?;
            let fields = r.0;
            for _ in 0..count {
                r.cstr()
                    .and_then(|_| r.bytes(18))
                    .ok_or_else(|| bad("RowDescription"))?;
            }
            Msg::RowDescription(RowDesc { count, fields })
        }
        b'C' => Msg::CommandComplete(r.cstr().ok_or_else(|| bad("CommandComplete"))?),
        b'I' => Msg::EmptyQuery,
        b'E' => {
            let (mut sqlstate, mut message) = ("", "");
            loop {
                let code = r.bytes(1).ok_or_else(|| bad("ErrorResponse"))?[0];
                if code == 0 {
                    break;
                }
                let value = r.cstr().ok_or_else(|| bad("ErrorResponse"))?;
                match code {
                    b'C' => sqlstate = value,
                    b'M' => message = value,
                    _ => {}
                }
            }
            Msg::Error { sqlstate, message }
        }
        b'Z' => match body {
            [status] => Msg::Ready(*status),
            _ => return Err(bad("ReadyForQuery")),
        },
        other => Msg::Other(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection over one end of a socket pair; the test plays the server on the other.
    fn pair() -> (WireConn, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        (WireConn::new(Stream::Unix(a)), b)
    }

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn data_row(cols: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = (cols.len() as u16).to_be_bytes().to_vec();
        for c in cols {
            match c {
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v);
                }
            }
        }
        msg(b'D', &b)
    }

    /// Collects what one read_available call delivers, as owned text for easy assertions.
    fn read(conn: &mut WireConn) -> (Result<Option<u8>, WireError>, Vec<String>) {
        let mut seen = Vec::new();
        let r = conn.read_available(|m| {
            seen.push(match m {
                Msg::DataRow(d) => format!(
                    "D {:?}",
                    d.values()
                        .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                        .collect::<Vec<_>>()
                ),
                Msg::RowDescription(t) => format!("T {:?}", t.names().collect::<Vec<_>>()),
                other => format!("{other:?}"),
            })
        });
        (r, seen)
    }

    #[test]
    fn parse_bind_describe_execute_sync_encode_per_spec() {
        let (mut c, _server) = pair();
        c.queue_parse("s1", "SELECT $1");
        let mut expected = b"P\0\0\0\x13s1\0SELECT $1\0\0\0".to_vec();
        assert_eq!(c.out, expected);

        c.begin_bind("s1", 2);
        c.bind_text(|b| b.push_i64(-42));
        c.bind_null();
        c.end_bind();
        c.queue_describe_portal();
        c.queue_execute();
        c.queue_sync();
        // Bind: portal "", statement "s1", 0 parameter format codes, 2 values ("-42", NULL),
        // 0 result format codes.
        expected.extend_from_slice(b"B\0\0\0\x19\0s1\0\0\0\0\x02\0\0\0\x03-42\xff\xff\xff\xff\0\0");
        expected.extend_from_slice(b"D\0\0\0\x06P\0");
        expected.extend_from_slice(b"E\0\0\0\x09\0\0\0\0\0");
        expected.extend_from_slice(b"S\0\0\0\x04");
        assert_eq!(c.out, expected);
    }

    #[test]
    fn query_encodes_with_nul_and_length() {
        let (mut c, _server) = pair();
        c.queue_query_with(|b| {
            use std::fmt::Write;
            write!(b, "SELECT {}", 7).unwrap();
        });
        assert_eq!(c.out, b"Q\0\0\0\x0dSELECT 7\0");
    }

    #[test]
    fn push_i64_renders_edge_values() {
        let mut v = Vec::new();
        let mut b = WireBuf { out: &mut v };
        for n in [0, 9, 10, -1, i64::MIN, i64::MAX] {
            b.push_i64(n);
            b.push_bytes(b",");
        }
        assert_eq!(
            String::from_utf8(v).unwrap(),
            format!("0,9,10,-1,{},{},", i64::MIN, i64::MAX)
        );
    }

    #[test]
    fn flush_sends_everything_queued() {
        let (mut c, mut server) = pair();
        c.queue_sync();
        assert!(c.wants_write());
        assert!(c.flush().unwrap());
        assert!(!c.wants_write());
        let mut got = [0u8; 5];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"S\0\0\0\x04");
    }

    #[test]
    fn row_description_data_row_error_and_ready_are_parsed() {
        let (mut c, mut server) = pair();
        let mut t = 2u16.to_be_bytes().to_vec();
        for name in ["a", "t"] {
            t.extend_from_slice(name.as_bytes());
            t.extend_from_slice(&[0; 19]);
        }
        let mut bytes = msg(b'1', b"");
        bytes.extend(msg(b'T', &t));
        bytes.extend(data_row(&[Some(b"42"), None]));
        bytes.extend(msg(b'C', b"SELECT 1\0"));
        bytes.extend(msg(b'E', b"SERROR\0C22012\0Mdivision by zero\0\0"));
        bytes.extend(msg(b'Z', b"I"));
        server.write_all(&bytes).unwrap();
        let (r, seen) = read(&mut c);
        assert_eq!(r.unwrap(), Some(b'I'));
        assert_eq!(
            seen,
            [
                "Other(49)",
                r#"T ["a", "t"]"#,
                r#"D [Some("42"), None]"#,
                r#"CommandComplete("SELECT 1")"#,
                r#"Error { sqlstate: "22012", message: "division by zero" }"#,
                "Ready(73)",
            ]
        );
        assert!(!c.has_buffered_message());
    }

    #[test]
    fn delivery_stops_at_the_first_ready_and_keeps_the_rest() {
        let (mut c, mut server) = pair();
        let mut bytes = msg(b'Z', b"T");
        bytes.extend(msg(b'C', b"COMMIT\0"));
        bytes.extend(msg(b'Z', b"I"));
        server.write_all(&bytes).unwrap();
        assert_eq!(read(&mut c).0.unwrap(), Some(b'T'));
        assert!(c.has_buffered_message());
        // No new bytes on the socket: the buffered messages are delivered without a read.
        let (r, seen) = read(&mut c);
        assert_eq!(r.unwrap(), Some(b'I'));
        assert_eq!(seen, [r#"CommandComplete("COMMIT")"#, "Ready(73)"]);
        assert!(!c.has_buffered_message());
        assert_eq!(read(&mut c).0.unwrap(), None, "nothing left, WouldBlock");
    }

    #[test]
    fn a_message_split_across_reads_is_reassembled() {
        let (mut c, mut server) = pair();
        let mut bytes = data_row(&[Some(b"hello"), Some(b"world")]);
        bytes.extend(msg(b'Z', b"I"));
        for cut in 1..bytes.len() {
            server.write_all(&bytes[..cut]).unwrap();
            let (r, first) = read(&mut c);
            assert_eq!(r.unwrap(), None, "cut {cut}");
            server.write_all(&bytes[cut..]).unwrap();
            let (r, rest) = read(&mut c);
            assert_eq!(r.unwrap(), Some(b'I'), "cut {cut}");
            let all: Vec<String> = first.into_iter().chain(rest).collect();
            assert_eq!(all, [r#"D [Some("hello"), Some("world")]"#, "Ready(73)"]);
        }
    }

    #[test]
    fn a_large_message_grows_the_buffer_and_arrives_whole() {
        let (mut c, mut server) = pair();
        let big = vec![b'x'; 3 * INPUT_START];
        let mut bytes = data_row(&[Some(&big)]);
        bytes.extend(msg(b'Z', b"I"));
        let writer = std::thread::spawn(move || server.write_all(&bytes).map(|_| server));
        let mut len = None;
        for _ in 0..1000 {
            let r = c.read_available(|m| {
                if let Msg::DataRow(d) = m {
                    len = d.values().next().flatten().map(|v| v.len());
                }
            });
            if r.unwrap() == Some(b'I') {
                break;
            }
            wait_fd(c.as_raw_fd(), libc::POLLIN, None).unwrap();
        }
        writer.join().unwrap().unwrap();
        assert_eq!(len, Some(big.len()));
    }

    #[test]
    fn bad_lengths_and_truncated_fields_are_protocol_errors() {
        let cases: Vec<Vec<u8>> = vec![
            b"Z\0\0\0\x02".to_vec(),              // length below 4
            b"D\x7f\xff\xff\xff".to_vec(),        // 2 GiB
            b"D\xff\xff\xff\xff".to_vec(),        // negative
            msg(b'D', b"\0\x01\0\0\0\x09ab"),     // value longer than the message
            msg(b'D', b"\0\x02\xff\xff\xff\xff"), // second column missing
            msg(b'D', b"\0\x01\xff\xff\xff\xfe"), // length -2
            msg(b'T', b"\0\x01name"),             // unterminated name
            msg(b'T', b"\0\x01a\0\0\0"),          // field attributes cut short
            msg(b'E', b"C22012"),                 // unterminated field
            msg(b'C', b"SELECT 1"),               // unterminated tag
            msg(b'C', b"\xff\xfe\0"),             // not UTF-8
            msg(b'Z', b""),                       // no status
        ];
        for bytes in cases {
            let (mut c, mut server) = pair();
            server.write_all(&bytes).unwrap();
            let (r, seen) = read(&mut c);
            match r {
                Err(e @ WireError::Protocol(_)) => assert!(e.is_connection_loss()),
                other => panic!("{bytes:?}: expected a protocol error, got {other:?} {seen:?}"),
            }
        }
    }

    #[test]
    fn eof_is_an_unexpected_eof_io_error() {
        let (mut c, server) = pair();
        drop(server);
        match read(&mut c).0 {
            Err(WireError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connection_loss_is_classified_by_sqlstate() {
        let server = |s: &str| server_error(s, "m");
        assert!(server("08006").is_connection_loss());
        assert!(server("57P01").is_connection_loss());
        assert!(server("57P03").is_connection_loss());
        assert!(!server("57014").is_connection_loss());
        assert!(!server("40001").is_connection_loss());
        assert!(!WireError::Auth("x".into()).is_connection_loss());
        assert_eq!(server("22012").sqlstate(), Some("22012"));
        assert_eq!(
            server("28P01").to_string(),
            "server error: m (SQLSTATE 28P01)"
        );
    }
}
