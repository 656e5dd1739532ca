//! Breakpoints and watchpoints: `Z type,addr,kind` (insert) and
//! `z type,addr,kind` (remove), types 0 to 4.
//!
//! `kind` is target-specific: the size of the breakpoint instruction for
//! software and hardware breakpoints (2 or 4 on ARM Thumb), the number of
//! bytes watched for watchpoints. GDB appends `;X...` condition lists and
//! `;cmds:...` only when the stub advertised `ConditionalBreakpoints+` /
//! `BreakpointCommands+`, which QEMU does not; they are kept verbatim in
//! [`Breakpoint::options`] so the packet can still be forwarded. Replies:
//! `OK`, `Exx`, or empty for an unsupported type.
//!
//! A stub has one breakpoint table for the whole target, so a proxy with
//! several clients must count insertions per (type, addr, kind) and only
//! remove a breakpoint from the stub when the last client removes it.

use super::split_once;
use crate::error::ParseError;
use crate::hex::{parse_hex_u64, write_hex_u64};

/// The `type` field of `Z`/`z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BreakpointType {
    /// 0: software breakpoint.
    Software,
    /// 1: hardware breakpoint.
    Hardware,
    /// 2: write watchpoint.
    WriteWatch,
    /// 3: read watchpoint.
    ReadWatch,
    /// 4: access (read or write) watchpoint.
    AccessWatch,
}

impl BreakpointType {
    /// The type for a wire number, if it is 0 to 4.
    pub fn from_number(number: u64) -> Option<BreakpointType> {
        Some(match number {
            0 => BreakpointType::Software,
            1 => BreakpointType::Hardware,
            2 => BreakpointType::WriteWatch,
            3 => BreakpointType::ReadWatch,
            4 => BreakpointType::AccessWatch,
            _ => return None,
        })
    }

    /// The wire number, 0 to 4.
    pub fn number(self) -> u8 {
        match self {
            BreakpointType::Software => 0,
            BreakpointType::Hardware => 1,
            BreakpointType::WriteWatch => 2,
            BreakpointType::ReadWatch => 3,
            BreakpointType::AccessWatch => 4,
        }
    }

    /// True for the three watchpoint types.
    pub fn is_watchpoint(self) -> bool {
        self.number() >= 2
    }
}

/// The arguments of a `Z` or `z` packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Breakpoint {
    /// Which kind of breakpoint or watchpoint.
    pub breakpoint_type: BreakpointType,
    /// Its address.
    pub addr: u64,
    /// Instruction size or watched length, see the module doc.
    pub kind: u64,
    /// Anything after `kind`, from its leading `;` on (conditions, commands),
    /// kept verbatim; usually empty.
    pub options: Vec<u8>,
}

impl Breakpoint {
    /// A breakpoint with no options.
    pub fn new(breakpoint_type: BreakpointType, addr: u64, kind: u64) -> Breakpoint {
        Breakpoint {
            breakpoint_type,
            addr,
            kind,
            options: Vec::new(),
        }
    }

    /// Parses `type,addr,kind[;options]`, the arguments after `Z` or `z`.
    pub fn parse(args: &[u8]) -> Result<Breakpoint, ParseError> {
        let hex = ParseError::hex("Z");
        let (fields, options) = match args.iter().position(|&byte| byte == b';') {
            Some(semicolon) => args.split_at(semicolon),
            None => (args, &[][..]),
        };
        let (number, rest) =
            split_once(fields, b',').ok_or(ParseError::malformed("Z", "no ','"))?;
        let (addr, kind) = split_once(rest, b',').ok_or(ParseError::malformed("Z", "no kind"))?;
        let number = parse_hex_u64(number).map_err(&hex)?;
        let breakpoint_type = BreakpointType::from_number(number)
            .ok_or(ParseError::malformed("Z", "type is not 0 to 4"))?;
        Ok(Breakpoint {
            breakpoint_type,
            addr: parse_hex_u64(addr).map_err(&hex)?,
            kind: parse_hex_u64(kind).map_err(&hex)?,
            options: options.to_vec(),
        })
    }

    /// Appends `type,addr,kind[;options]`.
    pub fn write(&self, out: &mut Vec<u8>) {
        write_hex_u64(u64::from(self.breakpoint_type.number()), out);
        out.push(b',');
        write_hex_u64(self.addr, out);
        out.push(b',');
        write_hex_u64(self.kind, out);
        out.extend_from_slice(&self.options);
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

    fn insert(breakpoint_type: BreakpointType, addr: u64, kind: u64) -> Result<Command, ()> {
        Ok(Command::InsertBreakpoint(Breakpoint::new(
            breakpoint_type,
            addr,
            kind,
        )))
    }

    #[test]
    fn breakpoint_packets() {
        check("Z0,1a4,2", insert(BreakpointType::Software, 0x1a4, 2));
        check("Z1,8000,4", insert(BreakpointType::Hardware, 0x8000, 4));
        check(
            "Z2,20000000,4",
            insert(BreakpointType::WriteWatch, 0x2000_0000, 4),
        );
        check(
            "Z3,20000000,1",
            insert(BreakpointType::ReadWatch, 0x2000_0000, 1),
        );
        check(
            "Z4,20000000,8",
            insert(BreakpointType::AccessWatch, 0x2000_0000, 8),
        );
        check(
            "z0,1a4,2",
            Ok(Command::RemoveBreakpoint(Breakpoint::new(
                BreakpointType::Software,
                0x1a4,
                2,
            ))),
        );
        let conditional = Breakpoint {
            options: b";X3,220a01".to_vec(),
            ..Breakpoint::new(BreakpointType::Software, 0x100, 2)
        };
        check(
            "Z0,100,2;X3,220a01",
            Ok(Command::InsertBreakpoint(conditional)),
        );
        check("Z5,100,2", Err(()));
        check("Z0,100", Err(()));
        check("Z0", Err(()));
        check("Zx,100,2", Err(()));
        check("z0,100,", Err(()));
    }

    #[test]
    fn types() {
        for number in 0..5 {
            let breakpoint_type = BreakpointType::from_number(number).expect("0 to 4 are types");
            assert_eq!(u64::from(breakpoint_type.number()), number);
            assert_eq!(breakpoint_type.is_watchpoint(), number >= 2);
        }
        assert_eq!(BreakpointType::from_number(5), None);
    }
}
