//! `vCont?` (which resume actions the stub supports), its reply
//! `vCont;c;C;s;S`, and `vCont;action[:thread-id]...` (resume threads).
//!
//! Each action applies to the threads its thread id names, or to every
//! thread not yet named when it has none: `vCont;s:p1.1;c` steps thread 1 and
//! lets the others run. This is what GDB sends for `stepi` and `continue`
//! once the stub lists vCont (QEMU does: `vCont;c;C;s;S`); one `next` over a
//! loop made 186 `vCont;s` on this project's measurements, so this packet is
//! on the hot path of a proxy: parsing it allocates only the action list.

use super::{Command, ThreadId, split_once};
use crate::error::ParseError;
use crate::hex::{parse_hex_u8, parse_hex_u64, write_hex_u8, write_hex_u64};

/// What one `vCont` action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResumeAction {
    /// `c`
    Continue,
    /// `C sig`
    ContinueWithSignal(u8),
    /// `s`
    Step,
    /// `S sig`
    StepWithSignal(u8),
    /// `t`: stop (non-stop mode).
    Stop,
    /// `r start,end`: step while the PC stays in `start..end`.
    RangeStep {
        /// First address of the range.
        start: u64,
        /// First address past the range.
        end: u64,
    },
}

/// One action of a `vCont` packet and the threads it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VContAction {
    /// What to do.
    pub action: ResumeAction,
    /// To which threads; `None` means every thread not named by an earlier action.
    pub thread: Option<ThreadId>,
}

impl VContAction {
    /// Parses one action such as `c`, `S05:p1.2` or `r1000,1010:1`.
    pub fn parse(bytes: &[u8]) -> Result<VContAction, ParseError> {
        let (action, thread) = match split_once(bytes, b':') {
            Some((action, thread)) => (action, Some(ThreadId::parse(thread)?)),
            None => (bytes, None),
        };
        let hex = ParseError::hex("vCont");
        let action = match action {
            b"c" => ResumeAction::Continue,
            b"s" => ResumeAction::Step,
            b"t" => ResumeAction::Stop,
            [b'C', signal @ ..] => {
                ResumeAction::ContinueWithSignal(parse_hex_u8(signal).map_err(&hex)?)
            }
            [b'S', signal @ ..] => {
                ResumeAction::StepWithSignal(parse_hex_u8(signal).map_err(&hex)?)
            }
            [b'r', range @ ..] => {
                let (start, end) = split_once(range, b',')
                    .ok_or(ParseError::malformed("vCont", "range without ','"))?;
                ResumeAction::RangeStep {
                    start: parse_hex_u64(start).map_err(&hex)?,
                    end: parse_hex_u64(end).map_err(&hex)?,
                }
            }
            _ => return Err(ParseError::malformed("vCont", "unknown action")),
        };
        Ok(VContAction { action, thread })
    }

    /// Appends the action, and `:thread-id` if it has one.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self.action {
            ResumeAction::Continue => out.push(b'c'),
            ResumeAction::Step => out.push(b's'),
            ResumeAction::Stop => out.push(b't'),
            ResumeAction::ContinueWithSignal(signal) => {
                out.push(b'C');
                write_hex_u8(signal, out);
            }
            ResumeAction::StepWithSignal(signal) => {
                out.push(b'S');
                write_hex_u8(signal, out);
            }
            ResumeAction::RangeStep { start, end } => {
                out.push(b'r');
                write_hex_u64(start, out);
                out.push(b',');
                write_hex_u64(end, out);
            }
        }
        if let Some(thread) = &self.thread {
            out.push(b':');
            thread.write(out);
        }
    }
}

/// Parses what follows `vCont` in a `vCont;...` packet (starting at the `;`).
pub(super) fn parse_vcont(args: &[u8]) -> Result<Command, ParseError> {
    let actions = args
        .strip_prefix(b";")
        .ok_or(ParseError::malformed("vCont", "no action"))?;
    actions
        .split(|&byte| byte == b';')
        .map(VContAction::parse)
        .collect::<Result<_, _>>()
        .map(Command::VCont)
}

/// Appends `vCont;action;action...`.
pub(super) fn write_vcont(actions: &[VContAction], out: &mut Vec<u8>) {
    out.extend_from_slice(b"vCont");
    for action in actions {
        out.push(b';');
        action.write(out);
    }
}

/// The reply to `vCont?`: which actions the stub supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VContSupported {
    /// `c`
    pub continue_: bool,
    /// `C`
    pub continue_with_signal: bool,
    /// `s`
    pub step: bool,
    /// `S`
    pub step_with_signal: bool,
    /// `t`
    pub stop: bool,
    /// `r`
    pub range_step: bool,
}

impl VContSupported {
    /// What QEMU answers: `vCont;c;C;s;S`.
    pub const QEMU: VContSupported = VContSupported {
        continue_: true,
        continue_with_signal: true,
        step: true,
        step_with_signal: true,
        stop: false,
        range_step: false,
    };

    /// Parses a `vCont;c;C;s;S` reply. Unknown action letters are ignored.
    pub fn parse(payload: &[u8]) -> Result<VContSupported, ParseError> {
        let rest = payload
            .strip_prefix(b"vCont")
            .ok_or(ParseError::malformed("vCont? reply", "no 'vCont'"))?;
        let mut supported = VContSupported::default();
        for action in rest.split(|&byte| byte == b';').skip(1) {
            match action {
                b"c" => supported.continue_ = true,
                b"C" => supported.continue_with_signal = true,
                b"s" => supported.step = true,
                b"S" => supported.step_with_signal = true,
                b"t" => supported.stop = true,
                b"r" => supported.range_step = true,
                _ => {}
            }
        }
        Ok(supported)
    }

    /// Appends the reply, `vCont` then each supported action.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"vCont");
        let flags = [
            (self.continue_, b'c'),
            (self.continue_with_signal, b'C'),
            (self.step, b's'),
            (self.step_with_signal, b'S'),
            (self.stop, b't'),
            (self.range_step, b'r'),
        ];
        for (supported, letter) in flags {
            if supported {
                out.extend_from_slice(&[b';', letter]);
            }
        }
    }

    /// True if the stub can run `action`.
    pub fn supports(&self, action: ResumeAction) -> bool {
        match action {
            ResumeAction::Continue => self.continue_,
            ResumeAction::ContinueWithSignal(_) => self.continue_with_signal,
            ResumeAction::Step => self.step,
            ResumeAction::StepWithSignal(_) => self.step_with_signal,
            ResumeAction::Stop => self.stop,
            ResumeAction::RangeStep { .. } => self.range_step,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::Id;

    fn check(input: &str, expected: Result<Vec<VContAction>, ()>) {
        let parsed = Command::parse(input.as_bytes()).map_err(drop);
        assert_eq!(parsed, expected.map(Command::VCont), "input {input:?}");
        if let Ok(command) = parsed {
            assert_eq!(command.to_payload(), input.as_bytes());
            assert_eq!(
                command.is_resume(),
                !input.starts_with("vCont;t"),
                "{input}"
            );
        }
    }

    fn action(action: ResumeAction, thread: Option<ThreadId>) -> VContAction {
        VContAction { action, thread }
    }

    #[test]
    fn vcont_commands() {
        let thread = ThreadId::multiprocess(1, 1);
        let all_of_1 = ThreadId {
            pid: Some(Id::from_u64(1)),
            tid: Id::All,
        };
        check("vCont;c", Ok(vec![action(ResumeAction::Continue, None)]));
        check(
            "vCont;s:p1.1;c:p1.-1",
            Ok(vec![
                action(ResumeAction::Step, Some(thread)),
                action(ResumeAction::Continue, Some(all_of_1)),
            ]),
        );
        check(
            "vCont;C05:p1.1;c",
            Ok(vec![
                action(ResumeAction::ContinueWithSignal(5), Some(thread)),
                action(ResumeAction::Continue, None),
            ]),
        );
        check(
            "vCont;S0b",
            Ok(vec![action(ResumeAction::StepWithSignal(0xb), None)]),
        );
        check(
            "vCont;t:p1.-1",
            Ok(vec![action(ResumeAction::Stop, Some(all_of_1))]),
        );
        check(
            "vCont;r1000,1010:p1.1",
            Ok(vec![action(
                ResumeAction::RangeStep {
                    start: 0x1000,
                    end: 0x1010,
                },
                Some(thread),
            )]),
        );
        check("vCont", Err(()));
        check("vCont;", Err(()));
        check("vCont;x", Err(()));
        check("vCont;c:", Err(()));
        check("vCont;r1000", Err(()));
        check("vCont;C", Err(()));
    }

    #[test]
    fn query_and_reply() {
        assert_eq!(Command::parse(b"vCont?"), Ok(Command::VContQuery));
        let qemu = VContSupported::parse(b"vCont;c;C;s;S").expect("QEMU's reply parses");
        assert_eq!(qemu, VContSupported::QEMU);
        assert!(qemu.supports(ResumeAction::Step) && !qemu.supports(ResumeAction::Stop));
        let mut out = Vec::new();
        qemu.write(&mut out);
        assert_eq!(out, b"vCont;c;C;s;S");
        let all = VContSupported::parse(b"vCont;c;C;s;S;t;r;x").expect("parses");
        assert!(all.stop && all.range_step);
        assert_eq!(
            VContSupported::parse(b"vCont"),
            Ok(VContSupported::default())
        );
        assert!(VContSupported::parse(b"").is_err());
    }
}
