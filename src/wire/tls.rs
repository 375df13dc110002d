//! TLS for the multiplexed driver: a rustls sans-IO session over the nonblocking TCP socket.
//!
//! The socket stays nonblocking and owned by poll(2): ciphertext is fed in with `read_tls` +
//! `process_new_packets` when poll says readable and drained with `write_tls` when it says
//! writable, so one thread still drives many connections. The rustls configuration is the
//! connector's (the same settings as the blocking paths); only the session is per connection.
//!
//! Invariants: [`TlsSocket::read`] and [`TlsSocket::write`] behave like a nonblocking socket's
//! (WouldBlock when nothing can move; `Ok(0)` from read is end of stream); decrypted bytes are
//! never left inside rustls behind the caller's back ([`TlsSocket::has_plaintext`] says when a
//! read should continue), because poll cannot see them; only the single answer byte to
//! SSLRequest is read before the handshake, so a server cannot inject plaintext into the session.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use super::connect::wait_fd;
use super::WireError;

/// PostgreSQL's SSLRequest: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// A TCP socket carrying a TLS session.
pub(super) struct TlsSocket {
    sock: TcpStream,
    tls: ClientConnection,
}

/// What the server answered to SSLRequest.
pub(super) enum Negotiated {
    /// It speaks TLS: the handshake is done.
    Tls(Box<TlsSocket>),
    /// It does not: the socket, untouched beyond the one answer byte, for plaintext.
    Refused(TcpStream),
}

/// Blocking (until `deadline`): SSLRequest, the answer, and on 'S' the whole handshake with
/// `config`, checking the certificate against `host`.
pub(super) fn negotiate(
    mut sock: TcpStream,
    config: &Arc<ClientConfig>,
    host: &str,
    deadline: Option<Instant>,
) -> Result<Negotiated, WireError> {
    let fd = sock.as_raw_fd();
    let mut sent = 0;
    while sent < SSL_REQUEST.len() {
        match sock.write(&SSL_REQUEST[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_fd(fd, libc::POLLOUT, deadline)?
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut answer = [0u8; 1];
    loop {
        match sock.read(&mut answer) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection after SSLRequest",
                )
                .into())
            }
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_fd(fd, libc::POLLIN, deadline)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    if answer[0] != b'S' {
        return Ok(Negotiated::Refused(sock));
    }
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| WireError::Tls(format!("host name '{host}' is not usable for TLS: {e}")))?;
    let tls = ClientConnection::new(config.clone(), name)
        .map_err(|e| WireError::Tls(format!("cannot start a TLS session: {e}")))?;
    let mut s = TlsSocket { sock, tls };
    s.handshake(deadline)?;
    Ok(Negotiated::Tls(Box::new(s)))
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsSocket {
    fn handshake(&mut self, deadline: Option<Instant>) -> Result<(), WireError> {
        let fd = self.sock.as_raw_fd();
        let failed = |e: io::Error| WireError::Tls(format!("TLS handshake failed: {e}"));
        while self.tls.is_handshaking() {
            if !self.write_out().map_err(failed)? {
                wait_fd(fd, libc::POLLOUT, deadline)?;
                continue;
            }
            if !self.tls.is_handshaking() {
                break;
            }
            match self.tls.read_tls(&mut self.sock) {
                Ok(0) => {
                    return Err(failed(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    )))
                }
                Ok(_) => {
                    if let Err(e) = self.tls.process_new_packets() {
                        // Tell the server why (the alert), then report it.
                        let _ = self.write_out();
                        return Err(failed(tls_error(e)));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_fd(fd, libc::POLLIN, deadline)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        while !self.write_out()? {
            wait_fd(fd, libc::POLLOUT, deadline)?;
        }
        Ok(())
    }

    /// Nonblocking: decrypted bytes into `buf`, reading ciphertext from the socket as needed.
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.tls.read_tls(&mut self.sock)? == 0 {
                return Ok(0);
            }
            self.tls.process_new_packets().map_err(tls_error)?;
            // Answers the session may owe (e.g. a key update) go out with the next flush.
            self.write_out()?;
        }
    }

    /// Nonblocking: encrypts what rustls accepts of `buf` and sends what the socket takes.
    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tls.writer().write(buf)?;
        self.write_out()?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Sends pending ciphertext; `Ok(true)` when none is left.
    pub(super) fn write_out(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Whether ciphertext waits to be sent (poll for POLLOUT).
    pub(super) fn wants_write(&self) -> bool {
        self.tls.wants_write()
    }

    /// Whether decrypted bytes wait inside rustls (poll would not report them).
    pub(super) fn has_plaintext(&mut self) -> bool {
        self.tls
            .process_new_packets()
            .is_ok_and(|s| s.plaintext_bytes_to_read() > 0)
    }

    /// `tls-server-end-point` channel binding data (RFC 5929) for SCRAM-SHA-256-PLUS: the
    /// server's certificate hashed with the hash of its signature algorithm (MD5 and SHA-1 are
    /// replaced by SHA-256); `None` when the algorithm names no hash (e.g. Ed25519).
    pub(super) fn server_end_point(&self) -> Option<Vec<u8>> {
        use sha2::Digest;
        use x509_cert::der::oid::db::rfc5912 as oid;
        use x509_cert::der::Decode;
        let der = self.tls.peer_certificates()?.first()?;
        let alg = x509_cert::Certificate::from_der(der)
            .ok()?
            .signature_algorithm
            .oid;
        let sha256 = [
            oid::MD_5_WITH_RSA_ENCRYPTION,
            oid::SHA_1_WITH_RSA_ENCRYPTION,
            oid::DSA_WITH_SHA_1,
            oid::SHA_256_WITH_RSA_ENCRYPTION,
            oid::ECDSA_WITH_SHA_256,
            oid::DSA_WITH_SHA_256,
        ];
        if sha256.contains(&alg) {
            Some(sha2::Sha256::digest(der.as_ref()).to_vec())
        } else if [oid::SHA_384_WITH_RSA_ENCRYPTION, oid::ECDSA_WITH_SHA_384].contains(&alg) {
            Some(sha2::Sha384::digest(der.as_ref()).to_vec())
        } else if [oid::SHA_512_WITH_RSA_ENCRYPTION, oid::ECDSA_WITH_SHA_512].contains(&alg) {
            Some(sha2::Sha512::digest(der.as_ref()).to_vec())
        } else {
            None
        }
    }

    /// The socket, for poll(2).
    pub(super) fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}
