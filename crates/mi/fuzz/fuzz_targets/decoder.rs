//! Fuzzes the MI line decoder and record parser with arbitrary bytes fed in
//! arbitrary chunks, and the command builder with arbitrary arguments.
//!
//! Invariants checked on every input:
//! - nothing panics (decoder, parser, lookups, command encoding);
//! - the records do not depend on how the input was chunked;
//! - an encoded command is exactly one line, and an argument that was
//!   accepted holds no control character.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use virserver_mi::{Command, Decoder, ParseError, Record, Value};

#[derive(Debug, Arbitrary)]
struct Input {
    /// Selects the line limit: small ones exercise over-long lines.
    limit_selector: u8,
    /// Chunk lengths, used in turn (0 is taken as 1).
    chunk_lengths: Vec<u8>,
    bytes: Vec<u8>,
    /// Arguments for the command builder.
    arguments: Vec<String>,
}

fn decode<'a>(limit: usize, chunks: impl Iterator<Item = &'a [u8]>) -> Vec<Result<Record, ParseError>> {
    let mut decoder = Decoder::with_max_line(limit);
    let mut records = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk);
        while let Some(record) = decoder.next_record() {
            records.push(record);
        }
    }
    records
}

fn chunks<'a>(bytes: &'a [u8], lengths: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = bytes;
    let mut index = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let wanted = lengths
            .get(index % lengths.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        index += 1;
        let (chunk, tail) = rest.split_at(usize::from(wanted).min(rest.len()));
        rest = tail;
        Some(chunk)
    })
}

/// Walks a value with every lookup.
fn visit(value: &Value) {
    let _ = value.as_str();
    let _ = value.get_str("name");
    for element in value.elements() {
        visit(element);
    }
    if let Some(tuple) = value.as_tuple() {
        for field in tuple.iter() {
            visit(&field.value);
        }
    }
}

fuzz_target!(|input: Input| {
    let limit = match input.limit_selector {
        0..=127 => usize::from(input.limit_selector),
        _ => virserver_mi::decoder::DEFAULT_MAX_LINE,
    };
    let whole = decode(limit, std::iter::once(input.bytes.as_slice()));
    let chunked = decode(limit, chunks(&input.bytes, &input.chunk_lengths));
    assert_eq!(whole, chunked, "chunking changed the records");
    for record in whole.iter().flatten() {
        match record {
            Record::Result(result) => {
                let _ = result.error_message();
                for field in result.results.iter() {
                    visit(&field.value);
                }
            }
            Record::Async(record) => {
                for field in record.results.iter() {
                    visit(&field.value);
                }
            }
            Record::Stream { .. } | Record::Prompt => {}
        }
    }

    let mut command = Command::new("data-evaluate-expression");
    for argument in &input.arguments {
        command = command.arg(argument.as_str());
    }
    if let Ok(line) = command.encode(1) {
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
        assert!(!line.bytes().any(|b| b != b'\n' && b.is_ascii_control()));
    }
});
