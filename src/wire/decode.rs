//! Backend messages parsed in place: [`Msg`] and its [`RowDesc`]/[`DataRow`] views borrow from the
//! connection's input buffer, and [`decode`] validates a message body before anything reads it.
//!
//! Split from the connection in the parent module because parsing is pure (bytes in, views out)
//! and is where a hostile server is kept out.
//!
//! Invariants: every read goes through the bounds-checked [`Reader`]; malformed content (bad
//! lengths, truncated fields, invalid UTF-8, a length over 1 GiB) is a [`WireError::Protocol`],
//! never a panic; the views are validated when received, so their iterators never fail half-way.

use super::WireError;

/// Largest backend message accepted (libpq's limit): a bigger length means a broken stream.
const MAX_MESSAGE_LEN: usize = 1 << 30;

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
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
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

    pub(super) fn i32(&mut self) -> Option<i32> {
        self.bytes(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn cstr(&mut self) -> Option<&'a str> {
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
pub(super) fn decode(tag: u8, body: &[u8]) -> Result<Msg<'_>, WireError> {
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

/// Length field of the message header at the start of `avail` (at least 5 bytes), checked.
pub(super) fn frame_len(avail: &[u8]) -> Result<usize, WireError> {
    let len = i32::from_be_bytes([avail[1], avail[2], avail[3], avail[4]]);
    if len < 4 || len as usize > MAX_MESSAGE_LEN {
        return Err(WireError::Protocol(format!(
            "message '{}' declares length {len}",
            avail[0].escape_ascii()
        )));
    }
    Ok(len as usize)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::super::tests::{data_row, msg, pair, read};
    use super::*;

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
}
