//! YAML documents read once by the YAML parser into JSON values (what the typed Kubernetes
//! objects are decoded from) together with the position of every field, taken from the parser's
//! own spans, so that an error or a finding can name the line to change.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

/// A line and a column in a YAML text, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

fn position(location: &serde_saphyr::Location) -> Option<Position> {
    (location.line() > 0).then(|| Position {
        line: location.line(),
        column: location.column(),
    })
}

/// Where every field of one document is: for a mapping entry its key, for a sequence item the
/// item, by path (`spec.containers[0].livenessProbe.periodSeconds`, as
/// `serde_path_to_error` writes paths; the document itself is `.`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Positions(BTreeMap<String, Position>);

impl Positions {
    /// The position of `path` itself, when the document has that field.
    pub fn exact(&self, path: &str) -> Option<Position> {
        self.0.get(path).copied()
    }

    /// The position of `path`, or of the nearest field above it that has one (a default the
    /// manifest leaves out is best shown at the object that would hold it).
    pub fn nearest(&self, path: &str) -> Option<Position> {
        let mut path = path;
        loop {
            if let Some(p) = self.0.get(path) {
                return Some(*p);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
            if path.is_empty() {
                return self.0.get(".").copied();
            }
        }
    }
}

/// One YAML document: its value and the positions of its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub value: Value,
    pub positions: Positions,
}

/// Why a text is not YAML, and where the parser stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct NotYaml {
    pub message: String,
    pub position: Option<Position>,
}

/// Every document of a multi-document YAML text.
pub fn documents(text: &str) -> Result<Vec<Document>, NotYaml> {
    let trees: Vec<Spanned<Tree>> = serde_saphyr::from_multiple(text).map_err(|e| NotYaml {
        message: e
            .to_string()
            .lines()
            .next()
            .unwrap_or("unreadable")
            .to_string(),
        position: e.location().as_ref().and_then(position),
    })?;
    Ok(trees
        .into_iter()
        .map(|tree| {
            let mut positions = BTreeMap::new();
            if let Some(p) = position(&tree.referenced) {
                positions.insert(".".to_string(), p);
            }
            let value = tree.value.into_value("", &mut positions);
            Document {
                value,
                positions: Positions(positions),
            }
        })
        .collect())
}

/// A YAML node with the spans of its keys and items.
enum Tree {
    Scalar(Value),
    Seq(Vec<Spanned<Tree>>),
    Map(Vec<(Spanned<Key>, Spanned<Tree>)>),
}

impl Tree {
    /// The JSON value, recording the position of every field below `path`.
    fn into_value(self, path: &str, positions: &mut BTreeMap<String, Position>) -> Value {
        match self {
            Tree::Scalar(value) => value,
            Tree::Seq(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let here = format!("{path}[{i}]");
                        if let Some(p) = position(&item.referenced) {
                            positions.insert(here.clone(), p);
                        }
                        item.value.into_value(&here, positions)
                    })
                    .collect(),
            ),
            Tree::Map(entries) => {
                let mut map = Map::new();
                for (key, value) in entries {
                    let here = if path.is_empty() {
                        key.value.0.clone()
                    } else {
                        format!("{path}.{}", key.value.0)
                    };
                    if let Some(p) = position(&key.referenced) {
                        positions.insert(here.clone(), p);
                    }
                    map.insert(key.value.0, value.value.into_value(&here, positions));
                }
                Value::Object(map)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Tree, E> {
        Ok(Tree::Scalar(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Tree, E> {
        Ok(Tree::Scalar(Value::Number(v.into())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tree, E> {
        Ok(Tree::Scalar(Value::Number(v.into())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Tree, E> {
        // `.nan` and `.inf` have no JSON form; no Kubernetes field takes them.
        Ok(Tree::Scalar(
            Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Tree, E> {
        Ok(Tree::Scalar(Value::String(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Tree, E> {
        Ok(Tree::Scalar(Value::String(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Tree, E> {
        Ok(Tree::Scalar(Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Tree, E> {
        Ok(Tree::Scalar(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Tree, D::Error> {
        Tree::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Tree::Map(entries))
    }
}

/// A mapping key: any scalar, as the text JSON would give it (`80: x` has the key `"80"`).
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key("null".into()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_json_with_the_position_of_every_field() {
        let text = "kind: Pod\nspec:\n  containers:\n  - name: c\n    livenessProbe:\n      periodSeconds: often\n---\n# second\nkind: Service\n";
        let docs = documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value["spec"]["containers"][0]["name"], "c");
        let at = |path: &str| docs[0].positions.nearest(path);
        assert_eq!(
            at("spec.containers[0].livenessProbe.periodSeconds"),
            Some(Position { line: 6, column: 7 })
        );
        assert_eq!(
            at("spec.containers[0]"),
            Some(Position { line: 4, column: 5 })
        );
        // A field the manifest leaves out is shown at the object that would hold it.
        assert_eq!(
            at("spec.containers[0].livenessProbe.timeoutSeconds"),
            Some(Position { line: 5, column: 5 })
        );
        assert_eq!(docs[1].value["kind"], "Service");
        assert_eq!(
            docs[1].positions.nearest("kind"),
            Some(Position { line: 9, column: 1 })
        );
    }

    #[test]
    fn numbers_booleans_and_keys_keep_their_json_form() {
        let docs = documents("a: 1\nb: -2\nc: 1.5\nd: true\ne: ~\n80: x\n").unwrap();
        assert_eq!(
            docs[0].value,
            serde_json::json!({"a": 1, "b": -2, "c": 1.5, "d": true, "e": null, "80": "x"})
        );
    }

    #[test]
    fn a_text_that_is_not_yaml_says_where() {
        let e = documents("kind: Pod\nspec: [\n").unwrap_err();
        assert!(e.position.is_some(), "{e:?}");
    }
}
