//! LineMap against the fixtures: agreement with the addr2line crate on every
//! code address, removed code at address 0, and bad input as typed errors.

mod common;

use std::borrow::Cow;

use common::{Fixture, read_fixture};
use object::{Object, ObjectSection};
use virserver_coverage::lines::normalize_path;
use virserver_coverage::{InAsmParser, LineMap, LineMapError, LineMapOptions};

/// The executable ranges of an ELF, from its section headers.
fn text_ranges(elf: &[u8]) -> Vec<std::ops::Range<u64>> {
    let file = object::File::parse(elf).expect("fixture parses");
    file.sections()
        .filter(|s| s.kind() == object::SectionKind::Text)
        .map(|s| s.address()..s.address() + s.size())
        .collect()
}

/// addr2line's answer for `address`, path normalized like ours. The ELF and
/// its sections are leaked: a test process is short-lived.
fn oracle(elf: &[u8]) -> impl Fn(u64) -> Option<(String, u32)> {
    let elf: &'static [u8] = Box::leak(elf.to_vec().into_boxed_slice());
    let file = object::File::parse(elf).expect("fixture parses");
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let sections = gimli::DwarfSections::load(|id| -> Result<Cow<'static, [u8]>, gimli::Error> {
        Ok(file
            .section_by_name(id.name())
            .and_then(|s| s.uncompressed_data().ok())
            .unwrap_or(Cow::Borrowed(&[])))
    })
    .expect("sections load");
    let sections: &'static gimli::DwarfSections<Cow<'static, [u8]>> = Box::leak(Box::new(sections));
    let dwarf = sections.borrow(|section| gimli::EndianSlice::new(section, endian));
    let context = addr2line::Context::from_dwarf(dwarf).expect("addr2line context");
    move |address| {
        let location = context.find_location(address).ok()??;
        Some((normalize_path(location.file?), location.line?))
    }
}

#[test]
fn lookup_agrees_with_addr2line_on_every_code_address() {
    for elf_path in [
        "cortex-m3/fixture.elf",
        "cortex-m3/fixture-gc.elf",
        "riscv32/fixture.elf",
    ] {
        let elf = read_fixture(elf_path);
        let map = LineMap::from_elf(&elf).expect("fixture has DWARF");
        let addr2line = oracle(&elf);
        let mut compared = 0;
        for range in text_ranges(&elf) {
            for address in (range.start..range.end).step_by(2) {
                let ours = map
                    .lookup(address)
                    .map(|(file, line)| (file.to_owned(), line));
                assert_eq!(ours, addr2line(address), "{elf_path} at {address:#x}");
                compared += usize::from(ours.is_some());
            }
        }
        assert!(
            compared > 50,
            "{elf_path}: only {compared} addresses had lines"
        );
    }
}

#[test]
fn paths_are_normalized_and_prefix_stripped() {
    let elf = Fixture::CortexM3.elf();
    let absolute = LineMap::from_elf(&elf).expect("fixture has DWARF");
    assert!(
        absolute.files().iter().any(|f| f == "/fixtures/program.c"),
        "{:?}",
        absolute.files()
    );
    assert!(
        absolute.files().iter().any(|f| f == "/fixtures/board.h"),
        "../board.h collapsed: {:?}",
        absolute.files()
    );
    assert!(
        absolute
            .files()
            .iter()
            .all(|f| !f.contains("/../") && !f.contains("/./"))
    );

    let relative = Fixture::CortexM3.line_map();
    assert!(
        relative.files().iter().any(|f| f == "cortex-m3/startup.c"),
        "{:?}",
        relative.files()
    );
    let (file, line) = relative
        .lookup(0x2a)
        .expect("checksum's first instruction has a line");
    assert_eq!((file, line), ("program.c", 28));

    let other_prefix = LineMapOptions {
        strip_prefix: Some("/elsewhere".to_owned()),
    };
    let untouched = LineMap::from_elf_with(&elf, &other_prefix).expect("fixture has DWARF");
    assert_eq!(untouched.files(), absolute.files());
}

#[test]
fn lookup_outside_code_is_none() {
    let map = Fixture::CortexM3.line_map();
    assert_eq!(map.lookup(0), None, "the vector table is data");
    assert_eq!(map.lookup(0x2000_0000), None);
    assert_eq!(map.lookup(u64::MAX), None);
}

/// With --gc-sections, never_called keeps its DWARF at address 0, on top of
/// the vector table. It must not appear as code there, nor in the report.
#[test]
fn linker_removed_code_is_not_reported() {
    let elf = read_fixture("cortex-m3/fixture-gc.elf");
    let options = LineMapOptions {
        strip_prefix: Some(common::DWARF_PREFIX.to_owned()),
    };
    let map = LineMap::from_elf_with(&elf, &options).expect("fixture has DWARF");
    for address in 0..0x10 {
        assert_eq!(
            map.lookup(address),
            None,
            "address {address:#x} is the vector table"
        );
    }
    let mut parser = InAsmParser::new();
    parser.feed(&read_fixture("cortex-m3/trace-gc.log"));
    let report = map.coverage(&parser.finish());
    let program = &report.files["program.c"];
    assert!(
        program.functions.iter().all(|f| f.name != "never_called"),
        "{:?}",
        program.functions
    );
    assert!(
        program.lines.range(9..=16).next().is_none(),
        "{:?}",
        program.lines
    );

    // Everything else is as in the normal build.
    let mut normal = Fixture::CortexM3.report();
    let normal_program = normal.files.get_mut("program.c").expect("program.c");
    normal_program
        .lines
        .retain(|line, _| !(9..=16).contains(line));
    normal_program
        .functions
        .retain(|f| f.name != "never_called");
    assert_eq!(program, normal_program);
}

#[test]
fn not_elf_is_a_typed_error() {
    for bytes in [
        &b""[..],
        b"hello world",
        b"MZ\x90\x00\x03\x00\x00\x00",
        b"\x7fELF",
    ] {
        let result = LineMap::from_elf(bytes);
        match bytes.starts_with(b"\x7fELF") {
            true => assert!(
                matches!(result, Err(LineMapError::Object(_))),
                "{bytes:?}: {result:?}"
            ),
            false => assert!(
                matches!(result, Err(LineMapError::NotElf)),
                "{bytes:?}: {result:?}"
            ),
        }
    }
}

#[test]
fn elf_without_dwarf_is_a_typed_error() {
    let result = LineMap::from_elf(&read_fixture("cortex-m3/fixture-nodebug.elf"));
    assert!(
        matches!(result, Err(LineMapError::NoDebugInfo)),
        "{result:?}"
    );
}

#[test]
fn truncated_elf_is_an_error_never_a_panic() {
    let elf = Fixture::CortexM3.elf();
    for length in (0..elf.len()).step_by(13).chain(0..64) {
        let result = LineMap::from_elf(&elf[..length]);
        assert!(result.is_err(), "prefix of {length} bytes parsed");
    }
}

/// Every byte of the DWARF sections overwritten, one at a time, with three
/// values: errors are fine, panics and hangs are not.
#[test]
fn corrupted_dwarf_never_panics() {
    let elf = Fixture::CortexM3.elf();
    let file = object::File::parse(&*elf).expect("fixture parses");
    let debug_ranges: Vec<_> = file
        .sections()
        .filter(|s| s.name().is_ok_and(|n| n.starts_with(".debug_")))
        .filter_map(|s| s.file_range())
        .collect();
    let (mut ok, mut err) = (0, 0);
    for (offset, size) in debug_ranges {
        for position in offset..offset + size {
            for value in [0x00, 0xff, 0x80] {
                let mut corrupted = elf.clone();
                corrupted[position as usize] = value;
                match LineMap::from_elf(&corrupted) {
                    Ok(map) => {
                        ok += 1;
                        let _ = map.lookup(0x2a);
                        let _ = map.coverage(&Fixture::CortexM3.executed());
                    }
                    Err(_) => err += 1,
                }
            }
        }
    }
    assert!(ok > 0 && err > 0, "{ok} parsed, {err} rejected");
}
