//! A lean PostgreSQL wire-protocol (v3) connection, the load's only one: the multiplexed driver's
//! threads drive many of these each over nonblocking sockets and poll(2), as pgbench does; the
//! pool driver and the connection scenario exchange on one per thread, blocking.
//!
//! Connecting (startup, authentication, session SQL) and [`WireConn::prepare_blocking`] block the
//! calling thread; everything after is nonblocking: the caller encodes messages into the output
//! buffer (`queue_*`, `begin_bind`..`end_bind`), pushes them with [`WireConn::flush`] when poll
//! says writable, and hands replies to a closure with [`WireConn::read_available`] when poll says
//! readable. A connection one thread owns and only exchanges on blocking (opened by the engine's
//! `wire_pool::connect_wire`) makes a plain socket blocking ([`WireConn::block_on_reads`]): the
//! wait for a reply is then the read itself, without a poll before it.
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
//! compiled into pgstorm through the `postgres` crate); TLS is a rustls sans-IO session over the
//! same nonblocking socket (`tls`), with the connector's settings.
//!
//! Layout: this module holds the connection and its nonblocking hot path (encoding, flush,
//! buffered reads); the blocking setup (connect, startup, authentication, prepare) lives in
//! `connect`, the parsing of backend messages into borrowed views in `decode`, and the TLS
//! session in `tls`, so each file carries one concern.

mod connect;
mod decode;
mod tls;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

use self::decode::{decode, frame_len};
pub use self::decode::{DataRow, Msg, RowDesc};
use self::tls::TlsSocket;

/// Initial input buffer size; also the size it is grown by at least.
const INPUT_START: usize = 16 * 1024;
/// Below this much free space at the end of the input buffer, compact (or grow) before a read.
const MIN_READ: usize = 4 * 1024;

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
    /// TLS could not be set up: the server refused it where it is required, or the handshake
    /// failed (e.g. the certificate did not verify).
    #[error("{0}")]
    Tls(String),
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
            WireError::Auth(_) | WireError::Tls(_) => false,
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

fn server_error(sqlstate: &str, message: &str) -> WireError {
    WireError::Server {
        sqlstate: sqlstate.to_string(),
        message: message.to_string(),
    }
}

/// The socket: TCP, TLS over TCP, or a Unix-domain socket.
enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsSocket>),
    Unix(UnixStream),
}

impl Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Tls(s) => s.fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }

    /// Sends bytes the TLS session holds; `Ok(true)` when nothing is left (always for plain).
    fn write_out(&mut self) -> io::Result<bool> {
        match self {
            Stream::Tls(s) => s.write_out(),
            _ => Ok(true),
        }
    }

    /// Whether the TLS session holds bytes to send.
    fn wants_write(&self) -> bool {
        matches!(self, Stream::Tls(s) if s.wants_write())
    }

    /// SCRAM channel binding data of the TLS session (`None` without TLS).
    fn server_end_point(&self) -> Option<Vec<u8>> {
        match self {
            Stream::Tls(s) => s.server_end_point(),
            _ => None,
        }
    }

    /// Puts a plain socket into blocking mode; `Ok(false)` for TLS, which stays nonblocking.
    fn set_blocking(&mut self) -> io::Result<bool> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(false).map(|()| true),
            Stream::Unix(s) => s.set_nonblocking(false).map(|()| true),
            Stream::Tls(_) => Ok(false),
        }
    }

    /// Puts a plain socket back into nonblocking mode (TLS sockets never leave it).
    fn set_nonblocking(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(true),
            Stream::Unix(s) => s.set_nonblocking(true),
            Stream::Tls(_) => Ok(()),
        }
    }

    /// Whether the TLS session holds decrypted bytes not yet read.
    fn has_plaintext(&mut self) -> bool {
        match self {
            Stream::Tls(s) => s.has_plaintext(),
            _ => false,
        }
    }
}

/// The password exchange the server asked for in the startup handshake: all a client can know of
/// the pg_hba method. `None` covers the methods that ask the client for nothing (trust, peer,
/// ident, cert): the server answered AuthenticationOk at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthExchange {
    /// No password asked for.
    None,
    /// Cleartext password.
    Password,
    /// MD5 challenge.
    Md5,
    /// SCRAM-SHA-256 without channel binding.
    ScramSha256,
    /// SCRAM-SHA-256-PLUS: bound to the TLS session.
    ScramSha256Plus,
}

impl AuthExchange {
    /// The SASL mechanism or pg_hba method name, as run.json records it.
    pub fn name(self) -> &'static str {
        match self {
            AuthExchange::None => "none",
            AuthExchange::Password => "password",
            AuthExchange::Md5 => "md5",
            AuthExchange::ScramSha256 => "SCRAM-SHA-256",
            AuthExchange::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
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
    /// What the server asked for during authentication.
    auth: AuthExchange,
    /// The socket blocks ([`WireConn::block_on_reads`]): reads wait for data, no poll first.
    blocking: bool,
}

impl fmt::Debug for WireConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WireConn(pid {})", self.backend_pid)
    }
}

/// Closing sends Terminate first, as libpq's `PQfinish` does, so the server ends the session as
/// a clean logout rather than an unexpected end of file. Never waits: the socket is made
/// nonblocking and a server that stopped reading just sees the socket close. Skipped in the
/// middle of a Bind being built (the output is not at a message boundary).
impl Drop for WireConn {
    fn drop(&mut self) {
        if self.bind_start.is_some() || self.stream.set_nonblocking().is_err() {
            return;
        }
        self.out.extend_from_slice(b"X\0\0\0\x04");
        let _ = self.flush();
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
            auth: AuthExchange::None,
            blocking: false,
        }
    }

    /// What the server asked for during authentication (known for any server version, unlike
    /// `system_user`, which PostgreSQL 16 added).
    pub fn auth_exchange(&self) -> AuthExchange {
        self.auth
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

    /// Queues CopyFail: ends a COPY FROM STDIN the client has no data for; the server answers
    /// with an error and, after the pending Sync, ReadyForQuery.
    pub fn queue_copy_fail(&mut self, reason: &str) {
        let start = self.begin_msg(b'f');
        self.push_cstr(reason);
        self.end_msg(start);
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
        Ok(self.stream.write_out()?)
    }

    /// Whether queued bytes wait to be written (poll for POLLOUT).
    pub fn wants_write(&self) -> bool {
        self.out_sent < self.out.len() || self.stream.wants_write()
    }

    /// Nonblocking: unless a complete message is already buffered, does one read() (WouldBlock
    /// is not an error; EOF is `Err(Io(UnexpectedEof))`; after
    /// [`block_on_reads`](Self::block_on_reads) that read waits for data). Then hands every complete message to
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

    /// One read() into the free space, compacting or growing the buffer first when it is short;
    /// over TLS, repeated until the session holds no decrypted bytes (poll cannot see them).
    fn fill(&mut self) -> Result<usize, WireError> {
        let mut total = 0;
        loop {
            let n = self.fill_once()?;
            total += n;
            if n == 0 || !self.stream.has_plaintext() {
                return Ok(total);
            }
        }
    }

    fn fill_once(&mut self) -> Result<usize, WireError> {
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

#[cfg(test)]
mod tests {
    use super::connect::wait_fd;
    use super::*;

    /// A connection over one end of a socket pair; the test plays the server on the other.
    pub(super) fn pair() -> (WireConn, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        (WireConn::new(Stream::Unix(a)), b)
    }

    pub(super) fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    pub(super) fn data_row(cols: &[Option<&[u8]>]) -> Vec<u8> {
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
    pub(super) fn read(conn: &mut WireConn) -> (Result<Option<u8>, WireError>, Vec<String>) {
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
    fn dropping_a_connection_sends_terminate() {
        let (c, mut server) = pair();
        drop(c);
        let mut got = Vec::new();
        server.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"X\0\0\0\x04");
    }

    #[test]
    fn block_on_reads_makes_the_exchange_wait_in_the_read() {
        let (mut c, mut server) = pair();
        let nonblocking = |c: &WireConn| {
            // SAFETY: F_GETFL on a socket this connection owns.
            let flags = unsafe { libc::fcntl(c.as_raw_fd(), libc::F_GETFL) };
            flags & libc::O_NONBLOCK != 0
        };
        assert!(nonblocking(&c));
        assert!(c.block_on_reads().unwrap());
        assert!(!nonblocking(&c));
        // The reply arrives late and in two pieces: the exchange waits for each inside read().
        c.queue_sync();
        let mut reply = msg(b'C', b"SELECT 1\0");
        reply.extend(msg(b'Z', b"I"));
        let server = std::thread::spawn(move || {
            let mut got = [0u8; 5];
            server.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"S\0\0\0\x04");
            std::thread::sleep(std::time::Duration::from_millis(50));
            server.write_all(&reply[..3]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            server.write_all(&reply[3..]).unwrap();
            server
        });
        let mut seen = Vec::new();
        let status = c
            .exchange_blocking(|m| seen.push(format!("{m:?}")))
            .unwrap();
        assert_eq!(status, b'I');
        assert_eq!(seen, [r#"CommandComplete("SELECT 1")"#, "Ready(73)"]);
        drop(server.join().unwrap());
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
