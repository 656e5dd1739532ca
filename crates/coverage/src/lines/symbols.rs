//! Source locations to code addresses, the reverse of `LineMap::lookup`: what a
//! debugger needs to set a breakpoint on "file.c:LINE" or on a function name, and to
//! name the function and line a stop landed on.

use super::LineMap;

/// Why a location did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    #[error("no source file ends with '{0}'")]
    NoSuchFile(String),
    #[error("'{file}' has no code at or after line {line}")]
    NoCodeAtLine { file: String, line: u32 },
    #[error("no function named '{0}' has code")]
    NoSuchFunction(String),
}

/// A resolved location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeLocation {
    pub address: u64,
    pub file: String,
    /// The line the address belongs to (a later one when the asked line has no code).
    pub line: u32,
}

impl LineMap {
    /// The lowest address of the code of `line` in the file whose path ends with `file`
    /// (whole path components); when that line has no code, the next line that has,
    /// as GDB does.
    pub fn line_address(&self, file: &str, line: u32) -> Result<CodeLocation, SymbolError> {
        let matches_file = |path: &str| {
            path == file
                || path
                    .strip_suffix(file)
                    .is_some_and(|head| head.ends_with('/'))
        };
        let file_ids: Vec<u32> = (0..self.files.len() as u32)
            .filter(|&id| matches_file(&self.files[id as usize]))
            .collect();
        if file_ids.is_empty() {
            return Err(SymbolError::NoSuchFile(file.to_owned()));
        }
        let mut best: Option<(u32, u64, u32)> = None;
        for (start, row) in self.starts.iter().zip(&self.rows) {
            if !file_ids.contains(&row.file) || row.line < line || row.end <= *start {
                continue;
            }
            let candidate = (row.line, *start, row.file);
            if best.is_none_or(|b| (candidate.0, candidate.1) < (b.0, b.1)) {
                best = Some(candidate);
            }
        }
        best.map(|(line, address, file)| CodeLocation {
            address,
            file: self.files[file as usize].clone(),
            line,
        })
        .ok_or_else(|| SymbolError::NoCodeAtLine {
            file: file.to_owned(),
            line,
        })
    }

    /// The entry of a function: the lowest address of its out-of-line body (of any of
    /// its code when it only exists inlined).
    pub fn function_address(&self, name: &str) -> Result<CodeLocation, SymbolError> {
        let function = self
            .functions
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| SymbolError::NoSuchFunction(name.to_owned()))?;
        let out_of_line = function
            .copies
            .iter()
            .filter(|copy| !copy.inlined)
            .flat_map(|copy| copy.ranges.iter())
            .map(|r| r.start)
            .min();
        let address = out_of_line
            .or_else(|| function.ranges.iter().map(|r| r.start).min())
            .ok_or_else(|| SymbolError::NoSuchFunction(name.to_owned()))?;
        let (file, line) = self
            .lookup(address)
            .map(|(file, line)| (file.to_owned(), line))
            .unwrap_or_else(|| (self.files[function.file as usize].clone(), function.line));
        Ok(CodeLocation {
            address,
            file,
            line,
        })
    }

    /// The name of the function whose code holds `address`; the innermost when code
    /// of several (inlined) functions is there.
    pub fn function_at(&self, address: u64) -> Option<&str> {
        self.functions
            .iter()
            .filter(|f| f.ranges.iter().any(|r| r.contains(&address)))
            .min_by_key(|f| f.ranges.iter().map(|r| r.end - r.start).sum::<u64>())
            .map(|f| f.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> LineMap {
        let elf = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/firmware/bin/hello-mps2-an385.elf"
        ))
        .unwrap();
        LineMap::from_elf(&elf).unwrap()
    }

    #[test]
    fn functions_and_lines_resolve_and_round_trip() {
        let map = map();
        let count_to = map.function_address("count_to").unwrap();
        assert!(count_to.file.ends_with("programs/hello.c"), "{count_to:?}");
        assert_eq!(map.function_at(count_to.address), Some("count_to"));
        let line = map.line_address("programs/hello.c", 18).unwrap();
        assert_eq!(line.line, 18);
        assert_eq!(map.lookup(line.address).map(|(_, l)| l), Some(18));
        assert_eq!(map.function_at(line.address), Some("count_to"));
        // Line 23 is blank: the next line with code is taken.
        let next = map.line_address("hello.c", 23).unwrap();
        assert!(next.line > 23, "{next:?}");
    }

    #[test]
    fn unknown_locations_are_typed_errors() {
        let map = map();
        assert!(matches!(
            map.line_address("nope.c", 1),
            Err(SymbolError::NoSuchFile(_))
        ));
        assert!(matches!(
            map.line_address("ello.c", 18),
            Err(SymbolError::NoSuchFile(_))
        ));
        assert!(matches!(
            map.line_address("programs/hello.c", 10_000),
            Err(SymbolError::NoCodeAtLine { .. })
        ));
        assert!(matches!(
            map.function_address("nope"),
            Err(SymbolError::NoSuchFunction(_))
        ));
    }
}
