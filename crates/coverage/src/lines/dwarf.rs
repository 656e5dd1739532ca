//! Reads the DWARF of an ELF image into the flat tables [`super::LineMap`]
//! is built from: line-table rows, functions and inlined call sites.
//!
//! Kept apart from the lookup code because this is the only part that knows
//! gimli and object: it walks every compile unit once, eagerly, and leaves
//! plain vectors behind. Three kinds of records come out of it:
//!
//! - every row of every line-table sequence, as `start..end` (the next row's
//!   address) with its file and line; rows that share an address are all
//!   kept, since the function-opening line usually shares its first address
//!   with the next statement;
//! - every `DW_TAG_subprogram` with code and every `DW_TAG_inlined_subroutine`,
//!   attributed to the function they are an instance of (following
//!   `DW_AT_abstract_origin` / `DW_AT_specification`, across units too);
//! - every inlined call site (`DW_AT_call_file` / `DW_AT_call_line`) with the
//!   ranges of the inlined code, since the call line often owns no row.
//!
//! Sequences and ranges of code the linker removed are dropped on the way
//! out (see `removed_code`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use gimli::{AttributeValue, EndianSlice, RunTimeEndian, UnitOffset};
use object::{Object, ObjectSection, SectionKind};

use super::paths::{join_dwarf_path, strip_path_prefix};
use super::removed_code::{CodeFilter, tombstone_for};
use super::{LineMapError, LineMapOptions};

type Reader<'data> = EndianSlice<'data, RunTimeEndian>;

/// One line-table row: `start..end` belongs to `file:line` (`line` 0 means
/// "no source line"). `end == start` for a row followed by another row at
/// the same address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRow {
    pub start: u64,
    pub end: u64,
    pub file: u32,
    pub line: u32,
}

/// A function with its code: merged over its out-of-line and inlined copies.
#[derive(Debug, Clone)]
pub(crate) struct RawFunction {
    pub name: String,
    pub file: Option<u32>,
    pub line: u32,
    pub ranges: Vec<Range<u64>>,
    /// The same code per copy (the out-of-line body, each inlined copy), for
    /// counting how often the function was entered.
    pub copies: Vec<RawCopy>,
}

/// One copy of a function's code.
#[derive(Debug, Clone)]
pub(crate) struct RawCopy {
    /// A `DW_TAG_inlined_subroutine` rather than a `DW_TAG_subprogram`.
    pub inlined: bool,
    pub ranges: Vec<Range<u64>>,
}

/// An inlined call: `file:line` is the call, `ranges` the inlined code.
#[derive(Debug, Clone)]
pub(crate) struct RawCallSite {
    pub file: u32,
    pub line: u32,
    pub ranges: Vec<Range<u64>>,
}

/// Everything [`super::LineMap`] needs, in no particular order.
#[derive(Debug, Default)]
pub(crate) struct RawTables {
    pub files: Vec<String>,
    pub rows: Vec<RawRow>,
    pub functions: Vec<RawFunction>,
    pub call_sites: Vec<RawCallSite>,
}

/// Name and declaration of one subprogram DIE, before following its origin.
#[derive(Debug)]
struct Identity<'data> {
    /// `.debug_info` offset of the DIE.
    offset: usize,
    name: Option<Reader<'data>>,
    file: Option<u32>,
    line: Option<u32>,
    /// `.debug_info` offset of the DIE this one completes.
    origin: Option<usize>,
}

/// One line-table sequence, before filtering.
struct Sequence {
    start: u64,
    end: u64,
    tombstone: u64,
    rows: Vec<RawRow>,
}

/// Interns rendered paths so that rows carry a `u32`.
#[derive(Default)]
struct FileTable {
    paths: Vec<String>,
    ids: HashMap<String, u32>,
    strip_prefix: Option<String>,
}

impl FileTable {
    fn intern(&mut self, path: String) -> u32 {
        let path = match &self.strip_prefix {
            Some(prefix) => strip_path_prefix(&path, prefix).unwrap_or(path),
            None => path,
        };
        if let Some(&id) = self.ids.get(&path) {
            return id;
        }
        let id = u32::try_from(self.paths.len()).unwrap_or(u32::MAX);
        self.ids.insert(path.clone(), id);
        self.paths.push(path);
        id
    }
}

/// Parses `elf` and collects rows, functions and call sites.
pub(crate) fn load(elf: &[u8], options: &LineMapOptions) -> Result<RawTables, LineMapError> {
    if !elf.starts_with(b"\x7fELF") {
        return Err(LineMapError::NotElf);
    }
    let file = object::File::parse(elf)?;
    let endian = if file.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    if file.section_by_name(".debug_line").is_none() {
        return Err(LineMapError::NoDebugInfo);
    }
    let text: Vec<Range<u64>> = file
        .sections()
        .filter(|section| section.kind() == SectionKind::Text && section.size() > 0)
        .map(|section| section.address()..section.address().saturating_add(section.size()))
        .collect();

    let sections = gimli::DwarfSections::load(|id| -> Result<Cow<'_, [u8]>, LineMapError> {
        match file.section_by_name(id.name()) {
            Some(section) => Ok(section.uncompressed_data()?),
            None => Ok(Cow::Borrowed(&[])),
        }
    })?;
    let dwarf = sections.borrow(|section| EndianSlice::new(section, endian));

    let mut files = FileTable {
        strip_prefix: options.strip_prefix.clone(),
        ..FileTable::default()
    };
    let mut collected = Collected::default();
    let mut headers = dwarf.units();
    while let Some(header) = headers.next()? {
        let unit = dwarf.unit(header)?;
        let unit = unit.unit_ref(&dwarf);
        let unit_files = unit_file_table(unit, &mut files)?;
        if let Some(program) = unit.line_program.clone() {
            read_sequences(program, &unit_files, &mut collected.sequences)?;
        }
        read_entries(unit, &unit_files, &mut collected)?;
    }

    let spans = collected
        .sequences
        .iter()
        .map(|sequence| sequence.start..sequence.end);
    let filter = CodeFilter::new(text, spans);
    let mut tables = RawTables::default();
    for sequence in collected.sequences {
        if filter.keep_range(&(sequence.start..sequence.end), sequence.tombstone) {
            tables.rows.extend(sequence.rows);
        }
    }
    for (mut call_site, tombstone) in collected.call_sites {
        call_site
            .ranges
            .retain(|range| filter.keep_range(range, tombstone));
        if !call_site.ranges.is_empty() {
            tables.call_sites.push(call_site);
        }
    }
    tables.functions = resolve_functions(collected.identities, collected.instances, &filter);
    tables.files = files.paths;
    if tables.rows.is_empty() {
        return Err(LineMapError::NoDebugInfo);
    }
    Ok(tables)
}

/// What the walk over all units gathers before filtering.
#[derive(Default)]
struct Collected<'data> {
    sequences: Vec<Sequence>,
    /// Pushed in .debug_info order, so sorted by offset (checked before use).
    identities: Vec<Identity<'data>>,
    /// (function DIE offset, ranges, address-size tombstone, inlined)
    instances: Vec<(usize, Vec<Range<u64>>, u64, bool)>,
    call_sites: Vec<(RawCallSite, u64)>,
}

/// Collects the subprograms and inlined subroutines of one unit.
fn read_entries<'data>(
    unit: gimli::UnitRef<'_, Reader<'data>>,
    unit_files: &[Option<u32>],
    collected: &mut Collected<'data>,
) -> Result<(), LineMapError> {
    let tombstone = tombstone_for(unit.header.address_size());
    // The raw cursor skips the attributes of the many DIEs we do not need
    // (types, variables, parameters) without decoding them.
    let mut entries = unit.entries_raw(None)?;
    let mut attribute_buffer = Vec::new();
    while !entries.is_empty() {
        let die_offset = entries.next_offset();
        let Some(abbreviation) = entries.read_abbreviation()? else {
            continue;
        };
        let tag = abbreviation.tag();
        if tag != gimli::DW_TAG_subprogram && tag != gimli::DW_TAG_inlined_subroutine {
            entries.skip_attributes(abbreviation.attributes())?;
            continue;
        }
        entries.read_attributes(abbreviation.attributes(), &mut attribute_buffer)?;
        let entry = Attributes(&attribute_buffer);
        let Some(offset) = global_offset(unit, die_offset) else {
            continue;
        };
        let origin = [gimli::DW_AT_abstract_origin, gimli::DW_AT_specification]
            .into_iter()
            .find_map(|name| entry.value(name).and_then(|value| reference(unit, value)));
        let ranges = die_ranges(unit, entry)?;

        if tag == gimli::DW_TAG_subprogram {
            let name = [
                gimli::DW_AT_linkage_name,
                gimli::DW_AT_MIPS_linkage_name,
                gimli::DW_AT_name,
            ]
            .into_iter()
            .find_map(|name| entry.value(name))
            .and_then(|value| unit.attr_string(value).ok());
            collected.identities.push(Identity {
                offset,
                name,
                file: file_attr(entry.value(gimli::DW_AT_decl_file), unit_files),
                line: line_attr(entry.value(gimli::DW_AT_decl_line)),
                origin,
            });
            if !ranges.is_empty() {
                collected.instances.push((offset, ranges, tombstone, false));
            }
            continue;
        }
        // DW_TAG_inlined_subroutine: an instance of its origin, and a call.
        if ranges.is_empty() {
            continue;
        }
        let call_file = file_attr(entry.value(gimli::DW_AT_call_file), unit_files);
        let call_line = line_attr(entry.value(gimli::DW_AT_call_line));
        if let (Some(file), Some(line)) = (call_file, call_line)
            && line != 0
        {
            let call_site = RawCallSite {
                file,
                line,
                ranges: ranges.clone(),
            };
            collected.call_sites.push((call_site, tombstone));
        }
        if let Some(origin) = origin {
            collected.instances.push((origin, ranges, tombstone, true));
        }
    }
    Ok(())
}

/// Maps the unit's line-program file indices to interned path ids.
fn unit_file_table(
    unit: gimli::UnitRef<'_, Reader<'_>>,
    files: &mut FileTable,
) -> Result<Vec<Option<u32>>, LineMapError> {
    let Some(program) = unit.line_program.as_ref() else {
        return Ok(Vec::new());
    };
    let header = program.header();
    let comp_dir = unit.comp_dir.map(|dir| dir.to_string_lossy().into_owned());
    let count = header.file_names().len() as u64;
    let mut table = Vec::new();
    // DWARF 5 numbers files from 0, earlier versions from 1.
    for index in 0..=count {
        let Some(entry) = header.file(index) else {
            table.push(None);
            continue;
        };
        let name = unit
            .attr_string(entry.path_name())?
            .to_string_lossy()
            .into_owned();
        let directory = match entry.directory(header) {
            Some(value) => Some(unit.attr_string(value)?.to_string_lossy().into_owned()),
            None => None,
        };
        let path = join_dwarf_path(comp_dir.as_deref(), directory.as_deref(), &name);
        table.push(Some(files.intern(path)));
    }
    Ok(table)
}

/// Runs the line program and appends its complete sequences.
fn read_sequences(
    program: gimli::IncompleteLineProgram<Reader<'_>>,
    unit_files: &[Option<u32>],
    sequences: &mut Vec<Sequence>,
) -> Result<(), LineMapError> {
    let tombstone = tombstone_for(program.header().address_size());
    let mut rows = program.rows();
    let mut current: Vec<(u64, Option<u32>, u32)> = Vec::new();
    while let Some((_, row)) = rows.next_row()? {
        if !row.end_sequence() {
            let line = row
                .line()
                .map_or(0, |line| u32::try_from(line.get()).unwrap_or(u32::MAX));
            let file = usize::try_from(row.file_index())
                .ok()
                .and_then(|i| unit_files.get(i).copied().flatten());
            current.push((row.address(), file, line));
            continue;
        }
        let end = row.address();
        let Some(&(start, _, _)) = current.first() else {
            continue;
        };
        let mut sequence = Sequence {
            start,
            end,
            tombstone,
            rows: Vec::with_capacity(current.len()),
        };
        for (index, &(address, file, line)) in current.iter().enumerate() {
            let next = current.get(index + 1).map_or(end, |&(next, _, _)| next);
            if index + 1 == current.len() && address >= end {
                // A row at the sequence's end address holds no instruction.
                continue;
            }
            // A row without a known file is kept as "no line" so that it still
            // ends the previous row's range in lookups.
            let (file, line) = match file {
                Some(file) => (file, line),
                None => (0, 0),
            };
            sequence.rows.push(RawRow {
                start: address,
                end: next.max(address),
                file,
                line,
            });
        }
        sequences.push(sequence);
        current.clear();
    }
    // Rows after the last end_sequence belong to a truncated sequence: dropped.
    Ok(())
}

/// The attributes of one DIE, read by the raw cursor.
#[derive(Clone, Copy)]
struct Attributes<'a, 'data>(&'a [gimli::Attribute<Reader<'data>>]);

impl<'data> Attributes<'_, 'data> {
    /// The normalized value of attribute `name` (file indices as `FileIndex`).
    fn value(&self, name: gimli::DwAt) -> Option<AttributeValue<Reader<'data>>> {
        self.0
            .iter()
            .find(|attr| attr.name() == name)
            .map(|attr| attr.value())
    }
}

/// Ranges from `DW_AT_low_pc` + `DW_AT_high_pc` (address or size) or
/// `DW_AT_ranges`, with overflow checked (gimli's own helper adds unchecked).
fn die_ranges<'data>(
    unit: gimli::UnitRef<'_, Reader<'data>>,
    entry: Attributes<'_, 'data>,
) -> Result<Vec<Range<u64>>, LineMapError> {
    if let Some(value) = entry.value(gimli::DW_AT_ranges)
        && let Some(mut list) = unit.attr_ranges(value)?
    {
        let mut ranges = Vec::new();
        while let Some(range) = list.next()? {
            ranges.push(range.begin..range.end);
        }
        return Ok(ranges);
    }
    let low = match entry.value(gimli::DW_AT_low_pc) {
        Some(value) => unit.attr_address(value)?,
        None => None,
    };
    let Some(low) = low else {
        return Ok(Vec::new());
    };
    let high = match entry.value(gimli::DW_AT_high_pc) {
        Some(AttributeValue::Udata(size)) => low.checked_add(size),
        Some(value) => unit.attr_address(value)?,
        None => None,
    };
    Ok(match high {
        Some(high) if high > low => std::iter::once(low..high).collect(),
        _ => Vec::new(),
    })
}

/// `.debug_info` offset of a DIE of `unit`.
fn global_offset(unit: gimli::UnitRef<'_, Reader<'_>>, offset: UnitOffset) -> Option<usize> {
    offset
        .to_debug_info_offset(&unit.header)
        .map(|offset| offset.0)
}

/// `.debug_info` offset a reference attribute points to (same or other unit).
fn reference(
    unit: gimli::UnitRef<'_, Reader<'_>>,
    value: AttributeValue<Reader<'_>>,
) -> Option<usize> {
    match value {
        AttributeValue::UnitRef(offset) => global_offset(unit, offset),
        AttributeValue::DebugInfoRef(offset) => Some(offset.0),
        _ => None,
    }
}

fn file_attr(value: Option<AttributeValue<Reader<'_>>>, unit_files: &[Option<u32>]) -> Option<u32> {
    let index = match value? {
        AttributeValue::FileIndex(index) | AttributeValue::Udata(index) => index,
        other => other.udata_value()?,
    };
    unit_files
        .get(usize::try_from(index).ok()?)
        .copied()
        .flatten()
}

fn line_attr(value: Option<AttributeValue<Reader<'_>>>) -> Option<u32> {
    u32::try_from(value?.udata_value()?).ok()
}

/// Follows each instance's origin chain for its name and declaration, then
/// merges instances of the same function (same name, file and line).
fn resolve_functions(
    mut identities: Vec<Identity<'_>>,
    instances: Vec<(usize, Vec<Range<u64>>, u64, bool)>,
    filter: &CodeFilter,
) -> Vec<RawFunction> {
    const MAX_ORIGIN_DEPTH: usize = 8;
    if !identities.is_sorted_by_key(|identity| identity.offset) {
        identities.sort_by_key(|identity| identity.offset);
    }
    let find = |offset: usize| {
        identities
            .binary_search_by_key(&offset, |identity| identity.offset)
            .ok()
            .and_then(|index| identities.get(index))
    };
    // (name, file, line) of the function, and the ranges of one instance.
    type Key<'a> = (&'a [u8], Option<u32>, u32);
    let mut resolved: Vec<(Key<'_>, RawCopy)> = Vec::new();
    for (offset, mut ranges, tombstone, inlined) in instances {
        ranges.retain(|range| filter.keep_range(range, tombstone));
        if ranges.is_empty() {
            continue;
        }
        let (mut name, mut file, mut line) = (None, None, None);
        let mut next = Some(offset);
        for _ in 0..MAX_ORIGIN_DEPTH {
            let Some(identity) = next.and_then(find) else {
                break;
            };
            name = name.or(identity.name);
            file = file.or(identity.file);
            line = line.or(identity.line);
            next = identity.origin;
        }
        if let Some(name) = name {
            let copy = RawCopy { inlined, ranges };
            resolved.push(((name.slice(), file, line.unwrap_or(0)), copy));
        }
    }
    resolved.sort_by(|a, b| a.0.cmp(&b.0));
    let mut functions: Vec<RawFunction> = Vec::new();
    let mut previous_key = None;
    for (key, copy) in resolved {
        match functions.last_mut() {
            Some(last) if previous_key == Some(key) => {
                last.ranges.extend_from_slice(&copy.ranges);
                last.copies.push(copy);
            }
            _ => functions.push(RawFunction {
                name: String::from_utf8_lossy(key.0).into_owned(),
                file: key.1,
                line: key.2,
                ranges: copy.ranges.clone(),
                copies: vec![copy],
            }),
        }
        previous_key = Some(key);
    }
    functions.sort_by(|a, b| (a.file, a.line, &a.name).cmp(&(b.file, b.line, &b.name)));
    functions
}
