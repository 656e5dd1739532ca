//! Source path rendering for DWARF file entries: the one place that decides
//! how a path in a coverage report is spelled.
//!
//! DWARF splits a path into the unit's `DW_AT_comp_dir`, an include
//! directory and a file name, any of which may be relative and contain `.`
//! or `..` (`/build/cortex-m3/../board.h`). Reports from two builds, or from
//! the line table and from `DW_AT_decl_file`, only merge if the same file is
//! spelled the same way, so every path goes through [`join_dwarf_path`] and
//! [`normalize_path`], then the optional prefix strip. This is lexical only:
//! the crate does no I/O, so symlinks are not resolved.

/// True for `/x` and for Windows `C:\x`, `C:/x` or `\\server` paths, which
/// replace rather than extend the directory they are joined to.
fn is_absolute(path: &str) -> bool {
    let bytes = path.as_bytes();
    path.starts_with('/')
        || path.starts_with('\\')
        || (bytes.len() >= 3
            && bytes[0].is_ascii_alphabetic()
            && bytes[1] == b':'
            && (bytes[2] == b'/' || bytes[2] == b'\\'))
}

/// Joins `comp_dir`, `directory` and `file` the way a compiler meant them:
/// each absolute part replaces what came before it. Empty parts are skipped.
pub(crate) fn join_dwarf_path(
    comp_dir: Option<&str>,
    directory: Option<&str>,
    file: &str,
) -> String {
    let mut path = String::new();
    for part in [comp_dir, directory, Some(file)].into_iter().flatten() {
        if part.is_empty() {
            continue;
        }
        if is_absolute(part) || path.is_empty() {
            path.clear();
            path.push_str(part);
        } else {
            if !path.ends_with('/') {
                path.push('/');
            }
            path.push_str(part);
        }
    }
    normalize_path(&path)
}

/// Collapses `.`, `..` and repeated separators lexically.
///
/// `..` at the root of an absolute path is dropped (`/..` is `/`); leading
/// `..` of a relative path are kept. The result never ends with `/` except for
/// the root itself. An empty or all-`.` relative path becomes `.`.
pub fn normalize_path(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Removes `prefix` from the start of a normalized `path` when it names a
/// whole leading directory (`/src` strips `/src/a.c`, not `/srcx/a.c`). The
/// prefix itself is normalized first, so `/src/`, `/src` and `/src/.` agree.
pub(crate) fn strip_path_prefix(path: &str, prefix: &str) -> Option<String> {
    let prefix = normalize_path(prefix);
    if prefix == "/" {
        return path.strip_prefix('/').map(str::to_owned);
    }
    let rest = path.strip_prefix(prefix.as_str())?;
    if rest.is_empty() {
        return Some(".".to_owned());
    }
    rest.strip_prefix('/').map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_collapses_dots() {
        let cases = [
            ("/a/b/../c/./d.c", "/a/c/d.c"),
            ("/fixtures/cortex-m3/../board.h", "/fixtures/board.h"),
            ("a//b///c.c", "a/b/c.c"),
            ("../x/../y.c", "../y.c"),
            ("../../y.c", "../../y.c"),
            ("/../../y.c", "/y.c"),
            ("./", "."),
            ("", "."),
            ("/", "/"),
            ("a/b/", "a/b"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_path(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn join_respects_absolute_parts() {
        assert_eq!(
            join_dwarf_path(Some("/build"), Some("src"), "main.c"),
            "/build/src/main.c"
        );
        assert_eq!(
            join_dwarf_path(Some("/build"), Some("/usr/include"), "x.h"),
            "/usr/include/x.h"
        );
        assert_eq!(
            join_dwarf_path(Some("/build"), None, "/abs/y.c"),
            "/abs/y.c"
        );
        assert_eq!(
            join_dwarf_path(Some("/build/obj"), Some("../src"), "./z.c"),
            "/build/src/z.c"
        );
        assert_eq!(join_dwarf_path(None, None, "rel.c"), "rel.c");
        assert_eq!(join_dwarf_path(Some("."), Some(""), "rel.c"), "rel.c");
        assert_eq!(
            join_dwarf_path(Some("/b"), None, "C:\\w\\k.c"),
            "C:\\w\\k.c"
        );
    }

    #[test]
    fn strip_prefix_only_at_directory_boundaries() {
        assert_eq!(
            strip_path_prefix("/src/a.c", "/src").as_deref(),
            Some("a.c")
        );
        assert_eq!(
            strip_path_prefix("/src/a.c", "/src/").as_deref(),
            Some("a.c")
        );
        assert_eq!(
            strip_path_prefix("/src/d/a.c", "/src/./").as_deref(),
            Some("d/a.c")
        );
        assert_eq!(strip_path_prefix("/srcx/a.c", "/src"), None);
        assert_eq!(strip_path_prefix("/other/a.c", "/src"), None);
        assert_eq!(strip_path_prefix("/a.c", "/").as_deref(), Some("a.c"));
        assert_eq!(strip_path_prefix("/src", "/src").as_deref(), Some("."));
    }
}
