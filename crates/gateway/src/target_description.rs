//! The target description: register names, numbers and sizes read from the
//! stub's `target.xml` and the documents it `xi:include`s.
//!
//! The gateway reads these documents once per upstream connection, before any
//! client request (QEMU 7.2 answers `g` with a legacy 168-byte layout until
//! someone has read target.xml), serves them to clients from its copy, and
//! uses the parsed registers for three things: naming the registers the API
//! returns, finding the `pc` and `sp` values in a `g` reply (the stop event's
//! pc, the stack prefetch), and answering `p` from a cached `g`.
//!
//! Parsing is deliberately small: the documents are produced by stubs, not
//! people, so a tag scanner that understands `<reg .../>`,
//! `<architecture>`, `<xi:include href=.../>`, comments and processing
//! instructions is enough. Pure code, no I/O.
//!
//! Register numbers follow GDB's rule: a `regnum` attribute sets the number,
//! and a register without one gets the previous register's number plus one,
//! across features and included documents in document order.
//!
//! The `g` layout follows QEMU's: the registers in number order, each
//! `bitsize / 8` bytes; numbers missing from the description take no room.
//! Registers past the end of a `g` reply are read with `p`.

/// One register of the target description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterInfo {
    /// Its name, such as `r0`, `sp`, `pc` or `xpsr`.
    pub name: String,
    /// The number used by `p` and `P`.
    pub number: u32,
    /// Its size in bits.
    pub bits: u32,
}

impl RegisterInfo {
    /// Its size in bytes (rounded up).
    pub fn bytes(&self) -> usize {
        (self.bits as usize).div_ceil(8)
    }
}

/// The parsed description: architecture and registers sorted by number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetDescription {
    /// The `<architecture>` text, such as `arm` or `riscv:rv32`.
    pub architecture: Option<String>,
    /// Every register, sorted by number.
    pub registers: Vec<RegisterInfo>,
}

/// Architectures whose registers travel big-endian in `g` replies.
const BIG_ENDIAN_ARCHITECTURES: [&str; 6] = ["powerpc", "rs6000", "m68k", "s390", "sparc", "hppa"];

impl TargetDescription {
    /// Parses the root document, expanding includes through `lookup`
    /// (missing includes are skipped).
    pub fn parse<'a>(root: &'a [u8], lookup: &dyn Fn(&str) -> Option<&'a [u8]>) -> Self {
        let mut description = TargetDescription::default();
        let mut next_number = 0u32;
        description.walk(root, lookup, &mut next_number, 0);
        description
            .registers
            .sort_by_key(|register| register.number);
        description
    }

    fn walk<'a>(
        &mut self,
        document: &'a [u8],
        lookup: &dyn Fn(&str) -> Option<&'a [u8]>,
        next_number: &mut u32,
        depth: usize,
    ) {
        let text = String::from_utf8_lossy(document);
        let mut in_architecture = false;
        for item in scan(&text) {
            match item {
                Item::Tag { name, attributes } => match name {
                    "architecture" => in_architecture = true,
                    "/architecture" => in_architecture = false,
                    "reg" => {
                        let attribute = |key: &str| {
                            attributes
                                .iter()
                                .find(|(name, _)| *name == key)
                                .map(|(_, value)| value.as_str())
                        };
                        let Some(register_name) = attribute("name") else {
                            continue;
                        };
                        let number = attribute("regnum")
                            .and_then(|value| value.parse().ok())
                            .unwrap_or(*next_number);
                        let bits = attribute("bitsize")
                            .and_then(|value| value.parse().ok())
                            .unwrap_or(0);
                        *next_number = number.saturating_add(1);
                        self.registers.push(RegisterInfo {
                            name: register_name.to_owned(),
                            number,
                            bits,
                        });
                    }
                    "xi:include" if depth < 8 => {
                        let href = attributes.iter().find(|(key, _)| *key == "href");
                        if let Some(included) = href.and_then(|(_, href)| lookup(href)) {
                            self.walk(included, lookup, next_number, depth + 1);
                        }
                    }
                    _ => {}
                },
                Item::Text(text) if in_architecture => {
                    let text = text.trim();
                    if !text.is_empty() {
                        self.architecture = Some(text.to_owned());
                    }
                }
                Item::Text(_) => {}
            }
        }
    }

    /// The `href`s of every `xi:include` in `document`, in order.
    pub fn includes(document: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(document);
        scan(&text)
            .into_iter()
            .filter_map(|item| match item {
                Item::Tag {
                    name: "xi:include",
                    attributes,
                } => attributes
                    .into_iter()
                    .find(|(key, _)| *key == "href")
                    .map(|(_, href)| href),
                _ => None,
            })
            .collect()
    }

    /// The register called `name`.
    pub fn register(&self, name: &str) -> Option<&RegisterInfo> {
        self.registers.iter().find(|register| register.name == name)
    }

    /// Where register `number` sits in a `g` reply: `(offset, length)`.
    /// The caller checks the range against the reply's length.
    pub fn g_range(&self, number: u32) -> Option<(usize, usize)> {
        let mut offset = 0usize;
        for register in &self.registers {
            if register.number == number {
                return Some((offset, register.bytes()));
            }
            offset += register.bytes();
        }
        None
    }

    /// True when register values travel most significant byte first.
    pub fn is_big_endian(&self) -> bool {
        self.architecture.as_deref().is_some_and(|architecture| {
            BIG_ENDIAN_ARCHITECTURES
                .iter()
                .any(|prefix| architecture.starts_with(prefix))
        })
    }

    /// The value of the register called `name` in a `g` reply, if it is there
    /// and fits in 64 bits.
    pub fn value_in_g(&self, name: &str, g: &[u8]) -> Option<u64> {
        let register = self.register(name)?;
        let (offset, length) = self.g_range(register.number)?;
        let bytes = g.get(offset..offset.checked_add(length)?)?;
        self.to_u64(bytes)
    }

    /// A register value in target byte order as a number (up to 8 bytes).
    pub fn to_u64(&self, bytes: &[u8]) -> Option<u64> {
        if bytes.is_empty() || bytes.len() > 8 {
            return None;
        }
        let fold = |value: u64, byte: &u8| (value << 8) | u64::from(*byte);
        Some(if self.is_big_endian() {
            bytes.iter().fold(0, fold)
        } else {
            bytes.iter().rev().fold(0, fold)
        })
    }

    /// A number as `length` bytes in target byte order (for `P`).
    pub fn from_u64(&self, value: u64, length: usize) -> Vec<u8> {
        let little: Vec<u8> = (0..length)
            .map(|index| {
                if index < 8 {
                    (value >> (8 * index)) as u8
                } else {
                    0
                }
            })
            .collect();
        if self.is_big_endian() {
            little.into_iter().rev().collect()
        } else {
            little
        }
    }

    /// The instruction size the `Z0`/`Z1` kind field carries for this
    /// architecture (QEMU ignores it; GDB sends 2 for Thumb code).
    pub fn breakpoint_kind(&self) -> u64 {
        match self.architecture.as_deref() {
            Some(architecture) if architecture.starts_with("arm") => 2,
            Some(architecture) if architecture.starts_with("riscv") => 2,
            _ => 1,
        }
    }
}

/// One thing found by the scanner.
#[derive(Debug, PartialEq, Eq)]
enum Item<'a> {
    /// `<name a="b" ...>` or `</name>` (name with its slash).
    Tag {
        name: &'a str,
        attributes: Vec<(&'a str, String)>,
    },
    /// Text between tags.
    Text(&'a str),
}

/// Cuts `text` into tags and text, skipping comments, `<? ?>` and `<! >`.
fn scan(text: &str) -> Vec<Item<'_>> {
    let mut items = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some(open) = rest.find('<') else {
            items.push(Item::Text(rest));
            break;
        };
        if open > 0 {
            items.push(Item::Text(&rest[..open]));
        }
        rest = &rest[open..];
        let end_marker = if rest.starts_with("<!--") {
            "-->"
        } else if rest.starts_with("<?") {
            "?>"
        } else {
            ">"
        };
        let Some(close) = rest.find(end_marker) else {
            break;
        };
        let inside = &rest[1..close];
        rest = &rest[close + end_marker.len()..];
        if end_marker == ">" && !inside.starts_with('!') {
            items.push(parse_tag(inside.trim_end_matches('/')));
        }
    }
    items
}

/// Parses `name key="value" key='value'`.
fn parse_tag(inside: &str) -> Item<'_> {
    let inside = inside.trim();
    let name_end = inside
        .find(|character: char| character.is_whitespace())
        .unwrap_or(inside.len());
    let (name, mut rest) = inside.split_at(name_end);
    let mut attributes = Vec::new();
    loop {
        rest = rest.trim_start();
        let Some(equals) = rest.find('=') else { break };
        let key = rest[..equals].trim();
        let after = rest[equals + 1..].trim_start();
        let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            break;
        };
        let Some(value_end) = after[1..].find(quote) else {
            break;
        };
        attributes.push((key, unescape(&after[1..1 + value_end])));
        rest = &after[value_end + 2..];
    }
    Item::Tag { name, attributes }
}

fn unescape(value: &str) -> String {
    value
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = r#"<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target><architecture>arm</architecture><xi:include href="arm-m-profile.xml"/><xi:include href="system-registers.xml"/></target>"#;
    const M_PROFILE: &str = r#"<?xml version="1.0"?>
<!-- Copyright (C) 2010-2020 Free Software Foundation, Inc. -->
<!DOCTYPE feature SYSTEM "gdb-target.dtd">
<feature name="org.gnu.gdb.arm.m-profile">
  <reg name="r0" bitsize="32"/>
  <reg name="sp" bitsize="32" type="data_ptr"/>
  <reg name="pc" bitsize="32" type="code_ptr"/>
  <reg name="xpsr" bitsize="32" regnum="25"/>
</feature>"#;
    const SYSTEM: &str = r#"<feature name="org.qemu.gdb.arm.m-system"><reg name="msp" bitsize="32"/><reg name='control' bitsize='8'/></feature>"#;

    fn lookup(name: &str) -> Option<&'static [u8]> {
        match name {
            "arm-m-profile.xml" => Some(M_PROFILE.as_bytes()),
            "system-registers.xml" => Some(SYSTEM.as_bytes()),
            _ => None,
        }
    }

    fn check(root: &'static str, expected: &[(&str, u32, u32)]) {
        let description = TargetDescription::parse(root.as_bytes(), &lookup);
        let registers: Vec<(&str, u32, u32)> = description
            .registers
            .iter()
            .map(|register| (register.name.as_str(), register.number, register.bits))
            .collect();
        assert_eq!(registers, expected);
    }

    #[test]
    fn numbering_follows_includes_and_regnum() {
        check(
            ROOT,
            &[
                ("r0", 0, 32),
                ("sp", 1, 32),
                ("pc", 2, 32),
                ("xpsr", 25, 32),
                ("msp", 26, 32),
                ("control", 27, 8),
            ],
        );
        check("<target><architecture>x</architecture></target>", &[]);
        check("garbage < not xml", &[]);
        check(
            "<reg name=\"a\" bitsize=\"16\"/><reg bitsize=\"8\"/>",
            &[("a", 0, 16)],
        );
    }

    #[test]
    fn includes_architecture_and_g_layout() {
        assert_eq!(
            TargetDescription::includes(ROOT.as_bytes()),
            ["arm-m-profile.xml", "system-registers.xml"]
        );
        let description = TargetDescription::parse(ROOT.as_bytes(), &lookup);
        assert_eq!(description.architecture.as_deref(), Some("arm"));
        assert_eq!(description.g_range(25), Some((12, 4)));
        assert_eq!(description.g_range(3), None);
        let g = [1, 0, 0, 0, 0xe0, 0x0f, 0, 0x20, 0x10, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(description.value_in_g("sp", &g), Some(0x2000_0fe0));
        assert_eq!(description.value_in_g("pc", &g), Some(0x10));
        assert_eq!(description.value_in_g("msp", &g), None);
        assert_eq!(description.from_u64(0x1234, 4), [0x34, 0x12, 0, 0]);
        assert_eq!(description.breakpoint_kind(), 2);
    }
}
