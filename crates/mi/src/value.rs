//! MI values: a c-string constant, a tuple of named results, or a list of values or of
//! named results (`stack=[frame={..},frame={..}]`), with lookups that never panic.

/// One `name=value` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: Value,
}

/// The `name=value` pairs of a record or tuple, in order. Names may repeat (GDB
/// repeats `frame` in a result list), so lookups return the first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Results(pub Vec<Field>);

impl Results {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|field| field.name == name)
            .map(|field| &field.value)
    }

    /// The named constant, if present and a constant.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Field> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A c-string, unescaped (bytes that are not UTF-8 replaced by U+FFFD).
    Const(String),
    /// `{name=value,...}`.
    Tuple(Results),
    /// `[value,...]`, and `[]`.
    List(Vec<Value>),
    /// `[name=value,...]`.
    ResultList(Results),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Const(text) => Some(text),
            _ => None,
        }
    }

    /// The fields of a tuple.
    pub fn as_tuple(&self) -> Option<&Results> {
        match self {
            Value::Tuple(results) => Some(results),
            _ => None,
        }
    }

    /// A field of a tuple (`frame={level="0",...}` -> `get("level")`).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.as_tuple().and_then(|results| results.get(name))
    }

    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// The elements of either kind of list, names dropped; empty for anything else.
    pub fn elements(&self) -> Vec<&Value> {
        match self {
            Value::List(values) => values.iter().collect(),
            Value::ResultList(results) => results.iter().map(|field| &field.value).collect(),
            Value::Const(_) | Value::Tuple(_) => Vec::new(),
        }
    }
}
