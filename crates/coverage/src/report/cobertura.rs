//! Cobertura XML output for [`CoverageReport`], the format GitLab's and
//! Jenkins' merge-request coverage views read.
//!
//! Written by hand: the document is small and flat, and an XML library
//! would add a dependency for escaping five characters. One `<package>` per
//! directory, one `<class>` per source file (Cobertura's Java vocabulary),
//! one `<method>` per function whose only line is its declaration. Branch
//! fields are present (the DTD requires them) and zero: the trace gives no
//! branch data. The timestamp is the caller's to give, since this crate reads
//! no clock.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{CoverageReport, FileCoverage, Totals, xml_escape as escape};

impl CoverageReport {
    /// The report as Cobertura XML with timestamp 0 (reproducible output).
    pub fn to_cobertura(&self) -> String {
        self.to_cobertura_at(0)
    }

    /// The report as Cobertura XML stamped with `timestamp` (seconds since
    /// the Unix epoch, as Cobertura writes it).
    pub fn to_cobertura_at(&self, timestamp: u64) -> String {
        let totals = self.totals();
        let mut packages: BTreeMap<&str, Vec<(&str, &FileCoverage)>> = BTreeMap::new();
        for (path, file) in &self.files {
            let directory = path
                .rsplit_once('/')
                .map_or(".", |(dir, _)| if dir.is_empty() { "/" } else { dir });
            packages.entry(directory).or_default().push((path, file));
        }

        let mut xml = String::new();
        xml.push_str("<?xml version=\"1.0\" ?>\n");
        xml.push_str(
            "<!DOCTYPE coverage SYSTEM \"http://cobertura.sourceforge.net/xml/coverage-04.dtd\">\n",
        );
        let _ = writeln!(
            xml,
            "<coverage line-rate=\"{}\" branch-rate=\"0\" lines-covered=\"{}\" lines-valid=\"{}\" \
branches-covered=\"0\" branches-valid=\"0\" complexity=\"0\" version=\"{} {}\" timestamp=\"{timestamp}\">",
            rate(totals.line_rate()),
            totals.lines_hit,
            totals.lines_found,
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        );
        xml.push_str("  <sources>\n    <source>.</source>\n  </sources>\n  <packages>\n");
        for (directory, files) in packages {
            let mut package_totals = Totals::default();
            for (_, file) in &files {
                package_totals.add(file.totals());
            }
            let _ = writeln!(
                xml,
                "    <package name=\"{}\" line-rate=\"{}\" branch-rate=\"0\" complexity=\"0\">\n      <classes>",
                escape(directory),
                rate(package_totals.line_rate()),
            );
            for (path, file) in files {
                write_class(&mut xml, path, file);
            }
            xml.push_str("      </classes>\n    </package>\n");
        }
        xml.push_str("  </packages>\n</coverage>\n");
        xml
    }
}

fn write_class(xml: &mut String, path: &str, file: &FileCoverage) {
    let name = path.rsplit_once('/').map_or(path, |(_, name)| name);
    let _ = writeln!(
        xml,
        "        <class name=\"{}\" filename=\"{}\" line-rate=\"{}\" branch-rate=\"0\" complexity=\"0\">",
        escape(name),
        escape(path),
        rate(file.totals().line_rate()),
    );
    xml.push_str("          <methods>\n");
    for function in &file.functions {
        let hit = u8::from(function.hits > 0);
        let _ = writeln!(
            xml,
            "            <method name=\"{}\" signature=\"\" line-rate=\"{hit}\" branch-rate=\"0\" complexity=\"0\">\n\
             \x20             <lines>\n\
             \x20               <line number=\"{}\" hits=\"{}\"/>\n\
             \x20             </lines>\n\
             \x20           </method>",
            escape(&function.name),
            function.line,
            function.hits,
        );
    }
    xml.push_str("          </methods>\n          <lines>\n");
    for (line, hits) in &file.lines {
        let _ = writeln!(
            xml,
            "            <line number=\"{line}\" hits=\"{hits}\" branch=\"false\"/>"
        );
    }
    xml.push_str("          </lines>\n        </class>\n");
}

/// A rate with at most four decimals and no trailing zeros (`0.8571`, `1`).
fn rate(value: f64) -> String {
    let fixed = format!("{value:.4}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::file;
    use super::*;

    #[test]
    fn rates_are_short_and_stable() {
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(1.0), "1");
        assert_eq!(rate(6.0 / 7.0), "0.8571");
        assert_eq!(rate(0.5), "0.5");
    }

    #[test]
    fn escapes_attribute_text() {
        assert_eq!(escape("a<b>&\"c\"'"), "a&lt;b&gt;&amp;&quot;c&quot;&apos;");
        // XML 1.0 has no control characters but tab and newlines, not even as `&#1;`.
        assert_eq!(escape("x\u{1}\t"), "x\u{fffd}\t");
    }

    #[test]
    fn document_is_well_formed_and_counts_lines() {
        let mut report = CoverageReport::default();
        report.files.insert(
            "src/a&b.c".into(),
            file(&[(3, 1), (4, 0)], &[("operator<", 3, 1), ("dead", 4, 0)]),
        );
        report.files.insert("top.c".into(), file(&[(1, 2)], &[]));
        let xml = report.to_cobertura_at(1_700_000_000);
        let document = roxmltree::Document::parse_with_options(
            &xml,
            roxmltree::ParsingOptions {
                allow_dtd: true,
                ..roxmltree::ParsingOptions::default()
            },
        )
        .expect("well-formed XML");
        let root = document.root_element();
        assert_eq!(root.tag_name().name(), "coverage");
        assert_eq!(root.attribute("lines-valid"), Some("3"));
        assert_eq!(root.attribute("lines-covered"), Some("2"));
        assert_eq!(root.attribute("line-rate"), Some("0.6667"));
        assert_eq!(root.attribute("timestamp"), Some("1700000000"));
        let classes: Vec<_> = document
            .descendants()
            .filter(|n| n.has_tag_name("class"))
            .map(|n| {
                (
                    n.attribute("filename").unwrap_or_default(),
                    n.attribute("line-rate").unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(classes, [("top.c", "1"), ("src/a&b.c", "0.5")]);
        let packages: Vec<_> = document
            .descendants()
            .filter(|n| n.has_tag_name("package"))
            .filter_map(|n| n.attribute("name"))
            .collect();
        assert_eq!(packages, [".", "src"]);
        let methods: Vec<_> = document
            .descendants()
            .filter(|n| n.has_tag_name("method"))
            .filter_map(|n| n.attribute("name"))
            .collect();
        assert_eq!(methods, ["operator<", "dead"]);
    }

    #[test]
    fn a_control_character_still_gives_a_document_strict_parsers_read() {
        let mut report = CoverageReport::default();
        report.files.insert(
            "src/odd\u{1}name.c".into(),
            file(&[(1, 1)], &[("f\u{7}", 1, 1)]),
        );
        let xml = report.to_cobertura_at(0);
        let document = roxmltree::Document::parse_with_options(
            &xml,
            roxmltree::ParsingOptions {
                allow_dtd: true,
                ..roxmltree::ParsingOptions::default()
            },
        )
        .expect("well-formed XML 1.0");
        let class = document
            .descendants()
            .find(|n| n.has_tag_name("class"))
            .unwrap();
        assert_eq!(class.attribute("filename"), Some("src/odd\u{fffd}name.c"));
    }
}
