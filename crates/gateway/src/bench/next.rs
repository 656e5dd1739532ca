//! The `next` benchmark: what GDB's `next` over a loop costs.
//!
//! GDB single-steps a source line until the pc leaves its address range.
//! Against QEMU's stub that is, per instruction, a `vCont;s`, a `g` and a
//! read at sp. Through the gateway, which offers range stepping (`vCont;r`)
//! and runs the loop next to the stub, it is one `vCont;r` and then the `g`
//! and the stack read, once.
//!
//! The range is a function of the firmware with a counting loop and no call
//! (the ticker's `delay(loops)`): the registers are set as for a call with
//! `loops` in r0 and a return address elsewhere, and the range is the
//! function, so both ways execute the same instructions and stop at the
//! same pc, which is checked.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use object::{Object, ObjectSymbol};
use tokio::io::{AsyncRead, AsyncWrite};
use virserver_rsp::hex::{decode_hex, encode_hex};

use super::RspClient;
use crate::target_description::TargetDescription;

/// Where to step: a function with a loop, its argument, and where it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextRange {
    /// First address of the function (Thumb bit cleared).
    pub start: u64,
    /// First address past it.
    pub end: u64,
    /// The address it returns to (another function; Thumb bit as in the symbol).
    pub return_to: u64,
    /// Its first argument, in r0 (the loop count).
    pub argument: u64,
}

impl NextRange {
    /// `function(argument)` returning to `return_to`, found in the ELF's
    /// symbols; `None` when either symbol is missing.
    pub fn find(
        kernel: &Path,
        function: &str,
        return_to: &str,
        argument: u64,
    ) -> io::Result<Option<NextRange>> {
        let data = std::fs::read(kernel)?;
        let elf = object::File::parse(&*data).map_err(io::Error::other)?;
        let symbol = |name: &str| {
            elf.symbols()
                .find(|symbol| symbol.name() == Ok(name))
                .map(|symbol| (symbol.address(), symbol.size()))
        };
        let (Some((start, size)), Some((return_to, _))) = (symbol(function), symbol(return_to))
        else {
            return Ok(None);
        };
        let start = start & !1;
        Ok(Some(NextRange {
            start,
            end: start + size.max(2),
            return_to,
            argument,
        }))
    }
}

/// One `next` over the range, timed: (time, instructions stepped by the
/// client, the final pc). `range_step` sends one `vCont;r`; otherwise the
/// client steps one instruction at a time as GDB does against QEMU.
pub(super) async fn next_over<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut RspClient<S>,
    description: &TargetDescription,
    range: NextRange,
    range_step: bool,
) -> io::Result<(Duration, usize, u64)> {
    for (name, value) in [
        ("r0", range.argument),
        ("lr", range.return_to | 1),
        ("pc", range.start),
    ] {
        let register = description
            .register(name)
            .ok_or_else(|| io::Error::other(format!("no register {name}")))?;
        let mut request = format!("P{:x}=", register.number).into_bytes();
        encode_hex(&description.from_u64(value, register.bytes()), &mut request);
        let reply = client.request(&request).await?;
        if reply != b"OK" {
            return Err(io::Error::other(format!(
                "{}: {}",
                request.escape_ascii(),
                reply.escape_ascii()
            )));
        }
    }
    let start = Instant::now();
    let mut steps = 0;
    let pc = loop {
        let request = if range_step {
            format!("vCont;r{:x},{:x}:p1.1", range.start, range.end)
        } else {
            "vCont;s:p1.1".to_owned()
        };
        let stop = client.request(request.as_bytes()).await?;
        if !stop.starts_with(b"T05") {
            return Err(io::Error::other(format!("step: {}", stop.escape_ascii())));
        }
        steps += 1;
        let g = decode_hex(&client.request(b"g").await?).map_err(io::Error::other)?;
        let value = |name| {
            description
                .value_in_g(name, &g)
                .ok_or_else(|| io::Error::other(format!("no {name} in g")))
        };
        let (pc, sp) = (value("pc")?, value("sp")?);
        client.request(format!("m{sp:x},40").as_bytes()).await?;
        if range_step || !(range.start..range.end).contains(&pc) {
            break pc;
        }
        if steps > 100_000 {
            return Err(io::Error::other("the loop did not leave its range"));
        }
    };
    Ok((start.elapsed(), steps, pc))
}
