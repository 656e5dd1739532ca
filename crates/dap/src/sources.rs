//! Source paths between an editor and a GDB that cannot read the editor's files.
//!
//! A session's DAP endpoint runs GDB on the server, confined: it may read the program,
//! not the sources (they are on the editor's machine, or not readable to it). GDB
//! matches a breakpoint's file against each symbol table's full name, and without the
//! file it cannot make that name absolute: firmware built with relative paths
//! (`examples/firmware/programs/ticker.c`) never matches the editor's
//! `/home/me/fw/examples/firmware/programs/ticker.c`, and the breakpoint stays pending.
//!
//! So breakpoints go to GDB by file name alone (GDB matches a name at any directory
//! boundary), and every `source.path` GDB sends back that ends in a name the editor
//! used becomes the editor's path again, so stops open the editor's file.

use std::collections::HashMap;

use serde_json::Value;

/// The editor's paths by file name, as its `setBreakpoints` gave them.
#[derive(Debug, Default)]
pub struct SourceMap {
    by_name: HashMap<String, String>,
}

impl SourceMap {
    /// `setBreakpoints` arguments as GDB gets them: `source.path` cut to its file name.
    pub fn to_gdb(&mut self, arguments: &mut Value) {
        let Some(path) = arguments["source"]["path"].as_str() else {
            return;
        };
        let Some(name) = file_name(path) else {
            return;
        };
        if name == path {
            return;
        }
        self.by_name.insert(name.to_owned(), path.to_owned());
        arguments["source"]["path"] = Value::String(name.to_owned());
    }

    /// Every `source` object in a message from GDB, with the editor's path where the
    /// file name is one it used.
    pub fn to_client(&self, message: &mut Value) {
        if self.by_name.is_empty() {
            return;
        }
        match message {
            Value::Object(object) => {
                for (key, value) in object.iter_mut() {
                    if key == "source"
                        && let Some(path) = value.get("path").and_then(Value::as_str)
                        && let Some(editor) = file_name(path).and_then(|n| self.by_name.get(n))
                    {
                        value["path"] = Value::String(editor.clone());
                        continue;
                    }
                    self.to_client(value);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.to_client(item)),
            _ => {}
        }
    }
}

/// The last component of a path, `/` or `\` separated.
fn file_name(path: &str) -> Option<&str> {
    path.rsplit(['/', '\\'])
        .next()
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn breakpoints_go_by_name_and_stops_come_back_with_the_editors_path() {
        let mut map = SourceMap::default();
        let mut arguments = json!({"source": {"path": "/home/me/fw/programs/ticker.c"}, "breakpoints": [{"line": 21}]});
        map.to_gdb(&mut arguments);
        assert_eq!(arguments["source"]["path"], "ticker.c");
        let mut windows = json!({"source": {"path": "C:\\fw\\main.c"}});
        map.to_gdb(&mut windows);
        assert_eq!(windows["source"]["path"], "main.c");

        let mut frames = json!({"body": {"stackFrames": [
            {"name": "tick", "source": {"name": "ticker.c", "path": "examples/firmware/programs/ticker.c"}},
            {"name": "other", "source": {"path": "examples/firmware/common/print.c"}},
        ]}});
        map.to_client(&mut frames);
        assert_eq!(
            frames["body"]["stackFrames"][0]["source"]["path"],
            "/home/me/fw/programs/ticker.c"
        );
        assert_eq!(
            frames["body"]["stackFrames"][0]["source"]["name"],
            "ticker.c"
        );
        assert_eq!(
            frames["body"]["stackFrames"][1]["source"]["path"],
            "examples/firmware/common/print.c"
        );

        // A bare name or no path is left as it is.
        let mut bare = json!({"source": {"path": "ticker.c"}});
        map.to_gdb(&mut bare);
        assert_eq!(bare["source"]["path"], "ticker.c");
        map.to_gdb(&mut json!({"breakpoints": []}));
    }
}
