//! `qXfer:object:read:annex:offset,length` and its `m...` / `l...` replies:
//! how GDB reads named objects such as the target description
//! (`qXfer:features:read:target.xml:0,ffb`).
//!
//! The reply carries raw bytes (escaped on the wire like any payload): `m`
//! followed by data when more may follow, `l` followed by data when this is
//! the last piece, or `Exx`. GDB asks again at the next offset until it gets
//! `l`. A proxy reads target.xml once (QEMU 7.2 returns a legacy register
//! layout until someone has) and then serves every client from its copy with
//! [`XferReply::from_document`]. `qXfer:...:write` and other operations are
//! left to [`Command::Other`](super::Command::Other).

use crate::error::ParseError;
use crate::hex::{parse_hex_u64, write_hex_u64};

/// The arguments of a `qXfer:object:read:annex:offset,length` request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct XferRead {
    /// The object, such as `features`, `memory-map` or `threads`.
    pub object: String,
    /// The annex, such as `target.xml`; often empty.
    pub annex: String,
    /// Byte offset into the object.
    pub offset: u64,
    /// Largest number of bytes wanted.
    pub length: u64,
}

impl XferRead {
    /// The target description read that GDB starts every session with.
    pub fn target_xml(offset: u64, length: u64) -> XferRead {
        XferRead {
            object: "features".into(),
            annex: "target.xml".into(),
            offset,
            length,
        }
    }

    /// Parses `object:read:annex:offset,length` (what follows `qXfer:`).
    /// `Ok(None)` when the operation is not `read`.
    pub fn parse(args: &[u8]) -> Result<Option<XferRead>, ParseError> {
        let text = std::str::from_utf8(args).map_err(|_| ParseError::not_utf8("qXfer"))?;
        let malformed = |reason| ParseError::malformed("qXfer", reason);
        let (object, rest) = text.split_once(':').ok_or(malformed("no operation"))?;
        let (operation, rest) = rest.split_once(':').ok_or(malformed("no annex"))?;
        if operation != "read" {
            return Ok(None);
        }
        let (annex, range) = rest.rsplit_once(':').ok_or(malformed("no offset"))?;
        let (offset, length) = range.split_once(',').ok_or(malformed("no length"))?;
        let hex = ParseError::hex("qXfer");
        Ok(Some(XferRead {
            object: object.to_owned(),
            annex: annex.to_owned(),
            offset: parse_hex_u64(offset.as_bytes()).map_err(&hex)?,
            length: parse_hex_u64(length.as_bytes()).map_err(&hex)?,
        }))
    }

    /// Appends the whole request, `qXfer:object:read:annex:offset,length`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"qXfer:");
        out.extend_from_slice(self.object.as_bytes());
        out.extend_from_slice(b":read:");
        out.extend_from_slice(self.annex.as_bytes());
        out.push(b':');
        write_hex_u64(self.offset, out);
        out.push(b',');
        write_hex_u64(self.length, out);
    }
}

/// A successful reply to a `qXfer` read (errors are
/// [`StandardReply`](super::StandardReply)s).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum XferReply {
    /// `m data`: more data may follow at the next offset.
    More(Vec<u8>),
    /// `l data`: the end of the object.
    Last(Vec<u8>),
}

impl XferReply {
    /// Parses a decoded `m...` or `l...` reply.
    pub fn parse(payload: &[u8]) -> Result<XferReply, ParseError> {
        match payload.split_first() {
            Some((b'm', data)) => Ok(XferReply::More(data.to_vec())),
            Some((b'l', data)) => Ok(XferReply::Last(data.to_vec())),
            _ => Err(ParseError::malformed("qXfer reply", "neither 'm' nor 'l'")),
        }
    }

    /// The piece of `document` that answers a read at `offset` of at most
    /// `length` bytes: `l` when it reaches the end, `m` otherwise.
    pub fn from_document(document: &[u8], offset: u64, length: u64) -> XferReply {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(document.len());
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        let end = start.saturating_add(length).min(document.len());
        let data = document.get(start..end).unwrap_or_default().to_vec();
        if end == document.len() {
            XferReply::Last(data)
        } else {
            XferReply::More(data)
        }
    }

    /// The data of either kind.
    pub fn data(&self) -> &[u8] {
        match self {
            XferReply::More(data) | XferReply::Last(data) => data,
        }
    }

    /// True for `l`.
    pub fn is_last(&self) -> bool {
        matches!(self, XferReply::Last(_))
    }

    /// Appends `m`/`l` and the data, unescaped: frame the result with
    /// [`encode_packet`](crate::frame::encode_packet).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(if self.is_last() { b'l' } else { b'm' });
        out.extend_from_slice(self.data());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::Command;

    fn check(input: &str, expected: Result<Command, ()>) {
        let parsed = Command::parse(input.as_bytes()).map_err(drop);
        assert_eq!(parsed, expected, "input {input:?}");
        if let Ok(command) = parsed {
            assert_eq!(command.to_payload(), input.as_bytes());
        }
    }

    fn read(object: &str, annex: &str, offset: u64, length: u64) -> Result<Command, ()> {
        Ok(Command::XferRead(XferRead {
            object: object.into(),
            annex: annex.into(),
            offset,
            length,
        }))
    }

    #[test]
    fn read_requests() {
        check(
            "qXfer:features:read:target.xml:0,ffb",
            Ok(Command::XferRead(XferRead::target_xml(0, 0xffb))),
        );
        check(
            "qXfer:features:read:arm-m-profile.xml:7fd,ffb",
            read("features", "arm-m-profile.xml", 0x7fd, 0xffb),
        );
        check("qXfer:threads:read::0,fff", read("threads", "", 0, 0xfff));
        check("qXfer:a:read:b:c:10,20", read("a", "b:c", 0x10, 0x20));
        check(
            "qXfer:features:write:target.xml:0:abc",
            Ok(Command::Other(
                b"qXfer:features:write:target.xml:0:abc".to_vec(),
            )),
        );
        check("qXfer:features:read:target.xml:0", Err(()));
        check("qXfer:features:read:target.xml", Err(()));
        check("qXfer:features", Err(()));
        check("qXfer:features:read:target.xml:x,1", Err(()));
    }

    #[test]
    fn replies() {
        assert_eq!(
            XferReply::parse(b"m<?xml"),
            Ok(XferReply::More(b"<?xml".to_vec()))
        );
        assert_eq!(
            XferReply::parse(b"l</target>"),
            Ok(XferReply::Last(b"</target>".to_vec()))
        );
        assert_eq!(XferReply::parse(b"l"), Ok(XferReply::Last(Vec::new())));
        assert!(XferReply::parse(b"E00").is_err());
        assert!(XferReply::parse(b"").is_err());
        let mut out = Vec::new();
        XferReply::More(b"<?xml".to_vec()).write(&mut out);
        XferReply::Last(Vec::new()).write(&mut out);
        assert_eq!(out, b"m<?xmll");
    }

    #[test]
    fn serving_a_document() {
        let document = b"<target>arm</target>";
        let check = |offset, length, expected: XferReply| {
            assert_eq!(
                XferReply::from_document(document, offset, length),
                expected,
                "{offset},{length}"
            );
        };
        check(0, 8, XferReply::More(b"<target>".to_vec()));
        check(8, 8, XferReply::More(b"arm</tar".to_vec()));
        check(16, 8, XferReply::Last(b"get>".to_vec()));
        check(0, 0xffb, XferReply::Last(document.to_vec()));
        check(0, 20, XferReply::Last(document.to_vec()));
        check(20, 8, XferReply::Last(Vec::new()));
        check(u64::MAX, u64::MAX, XferReply::Last(Vec::new()));
        check(4, 0, XferReply::More(Vec::new()));
    }
}
