//! `qSupported[:features]` and its reply: the feature negotiation that opens
//! every GDB session.
//!
//! Both directions use the same list syntax, entries separated by `;`:
//! `name+` (supported), `name-` (not supported), `name?` (ask the other side),
//! and `name=value`. GDB 13.1 sends (to an ARM target too)
//! `qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;vfork-events+;exec-events+;vContSupported+;QThreadEvents+;no-resumed+;memory-tagging+;xmlRegisters=i386`,
//! and QEMU 7.2 answers
//! `PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+`
//! (the packet size is hex: 4096 bytes). A proxy rewrites the stub's reply
//! before clients see it: it may add `QStartNoAckMode+` it implements itself,
//! or remove reverse execution it must refuse.
//!
//! `QStartNoAckMode` (reply `OK`) is parsed in [`Command`](super::Command)
//! directly; it takes no argument.

use std::fmt;

use crate::error::ParseError;
use crate::hex::parse_hex_u64;

/// The suffix of one feature entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FeatureSupport {
    /// `name+`
    Supported,
    /// `name-`
    Unsupported,
    /// `name?`: the sender asks whether the other side supports it.
    Query,
    /// `name=value`
    Value(String),
}

/// One entry of a feature list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Feature {
    /// The feature name, such as `multiprocess` or `qXfer:features:read`.
    pub name: String,
    /// Its suffix.
    pub support: FeatureSupport,
}

impl Feature {
    /// `name+`
    pub fn supported(name: &str) -> Feature {
        Feature {
            name: name.to_owned(),
            support: FeatureSupport::Supported,
        }
    }

    /// `name=value`
    pub fn value(name: &str, value: &str) -> Feature {
        Feature {
            name: name.to_owned(),
            support: FeatureSupport::Value(value.to_owned()),
        }
    }

    /// Parses one entry.
    pub fn parse(entry: &str) -> Result<Feature, ParseError> {
        if let Some((name, value)) = entry.split_once('=') {
            return check_name(Feature::value(name, value));
        }
        let (name, support) = match entry.as_bytes().last() {
            Some(b'+') => (&entry[..entry.len() - 1], FeatureSupport::Supported),
            Some(b'-') => (&entry[..entry.len() - 1], FeatureSupport::Unsupported),
            Some(b'?') => (&entry[..entry.len() - 1], FeatureSupport::Query),
            _ => {
                return Err(ParseError::malformed(
                    "qSupported",
                    "feature without '+', '-', '?' or '='",
                ));
            }
        };
        check_name(Feature {
            name: name.to_owned(),
            support,
        })
    }
}

fn check_name(feature: Feature) -> Result<Feature, ParseError> {
    if feature.name.is_empty() {
        return Err(ParseError::malformed(
            "qSupported",
            "feature without a name",
        ));
    }
    Ok(feature)
}

impl fmt::Display for Feature {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.support {
            FeatureSupport::Supported => write!(formatter, "{}+", self.name),
            FeatureSupport::Unsupported => write!(formatter, "{}-", self.name),
            FeatureSupport::Query => write!(formatter, "{}?", self.name),
            FeatureSupport::Value(value) => write!(formatter, "{}={value}", self.name),
        }
    }
}

/// An ordered feature list, as sent by a client or answered by a stub.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Features(pub Vec<Feature>);

impl Features {
    /// Parses `entry;entry;...` (empty entries are skipped). This is the
    /// stub's whole reply, or what follows `qSupported:` in a request.
    pub fn parse(list: &[u8]) -> Result<Features, ParseError> {
        let text = std::str::from_utf8(list).map_err(|_| ParseError::not_utf8("qSupported"))?;
        text.split(';')
            .filter(|entry| !entry.is_empty())
            .map(Feature::parse)
            .collect::<Result<_, _>>()
            .map(Features)
    }

    /// Appends the entries separated by `;`.
    pub fn write(&self, out: &mut Vec<u8>) {
        for (index, feature) in self.0.iter().enumerate() {
            if index > 0 {
                out.push(b';');
            }
            out.extend_from_slice(feature.to_string().as_bytes());
        }
    }

    /// The suffix of feature `name`, if listed (the last entry wins).
    pub fn get(&self, name: &str) -> Option<&FeatureSupport> {
        self.0
            .iter()
            .rev()
            .find(|feature| feature.name == name)
            .map(|feature| &feature.support)
    }

    /// True if `name+` is listed.
    pub fn is_supported(&self, name: &str) -> bool {
        self.get(name) == Some(&FeatureSupport::Supported)
    }

    /// The value of `name=value`, if listed.
    pub fn value(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(FeatureSupport::Value(value)) => Some(value),
            _ => None,
        }
    }

    /// The stub's `PacketSize=` (hex), in bytes.
    pub fn packet_size(&self) -> Option<u64> {
        self.value("PacketSize")
            .and_then(|size| parse_hex_u64(size.as_bytes()).ok())
    }

    /// Sets feature `name`, replacing an entry of that name or appending one.
    pub fn set(&mut self, name: &str, support: FeatureSupport) {
        match self.0.iter_mut().find(|feature| feature.name == name) {
            Some(feature) => feature.support = support,
            None => self.0.push(Feature {
                name: name.to_owned(),
                support,
            }),
        }
    }

    /// Removes every entry named `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|feature| feature.name != name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::Command;

    /// QEMU 7.2's reply, as measured.
    const QEMU_REPLY: &str = "PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+";
    /// GDB 13.1's request to QEMU (tests/fixtures/qemu-7.2-session.log).
    const GDB_REQUEST: &str = "qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;vfork-events+;exec-events+;vContSupported+;QThreadEvents+;no-resumed+;memory-tagging+;xmlRegisters=i386";

    fn check(input: &str, expected: Result<Vec<Feature>, ()>) {
        let parsed = Features::parse(input.as_bytes()).map_err(drop);
        assert_eq!(parsed, expected.map(Features), "input {input:?}");
        if let Ok(features) = parsed {
            let mut out = Vec::new();
            features.write(&mut out);
            assert_eq!(Features::parse(&out), Ok(features));
        }
    }

    fn feature(name: &str, support: FeatureSupport) -> Feature {
        Feature {
            name: name.to_owned(),
            support,
        }
    }

    #[test]
    fn feature_lists() {
        check("", Ok(vec![]));
        check(
            "multiprocess+",
            Ok(vec![Feature::supported("multiprocess")]),
        );
        check(
            "swbreak-;hwbreak?",
            Ok(vec![
                feature("swbreak", FeatureSupport::Unsupported),
                feature("hwbreak", FeatureSupport::Query),
            ]),
        );
        check(
            "PacketSize=1000;",
            Ok(vec![Feature::value("PacketSize", "1000")]),
        );
        check(
            "xmlRegisters=i386,arm",
            Ok(vec![Feature::value("xmlRegisters", "i386,arm")]),
        );
        check("a=b=c", Ok(vec![Feature::value("a", "b=c")]));
        check("multiprocess", Err(()));
        check("+", Err(()));
        check("=1", Err(()));
    }

    #[test]
    fn qemu_reply() {
        let features = Features::parse(QEMU_REPLY.as_bytes()).expect("QEMU's reply parses");
        assert_eq!(features.packet_size(), Some(4096));
        assert!(features.is_supported("qXfer:features:read"));
        assert!(features.is_supported("vContSupported"));
        assert!(features.is_supported("multiprocess"));
        assert!(!features.is_supported("QStartNoAckMode"));
        assert!(!features.is_supported("ReverseStep"));
        let mut out = Vec::new();
        features.write(&mut out);
        assert_eq!(out, QEMU_REPLY.as_bytes());
    }

    #[test]
    fn gdb_request() {
        let Ok(Command::QSupported(features)) = Command::parse(GDB_REQUEST.as_bytes()) else {
            panic!("GDB's qSupported parses");
        };
        assert_eq!(features.0.len(), 12);
        assert!(features.is_supported("swbreak"));
        assert_eq!(features.value("xmlRegisters"), Some("i386"));
        assert_eq!(
            Command::QSupported(features).to_payload(),
            GDB_REQUEST.as_bytes()
        );
        assert_eq!(
            Command::parse(b"qSupported"),
            Ok(Command::QSupported(Features::default()))
        );
        assert_eq!(
            Command::QSupported(Features::default()).to_payload(),
            b"qSupported"
        );
        assert!(Command::parse(b"qSupported:\xff+").is_err());
    }

    #[test]
    fn rewriting_a_reply() {
        let mut features = Features::parse(QEMU_REPLY.as_bytes()).expect("parses");
        features.set("QStartNoAckMode", FeatureSupport::Supported);
        features.set("PacketSize", FeatureSupport::Value("4000".into()));
        features.remove("multiprocess");
        let mut out = Vec::new();
        features.write(&mut out);
        assert_eq!(
            out,
            b"PacketSize=4000;qXfer:features:read+;vContSupported+;QStartNoAckMode+"
        );
    }
}
