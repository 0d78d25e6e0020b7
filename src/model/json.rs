//! Typed decoding of request bodies straight from the bytes: no `serde_json::Value` tree in
//! between, the numbers of a tensor read into one flat buffer.
//!
//! These are fast paths for valid requests only. Each returns `None` for anything it does not
//! accept exactly as the general path ([`super::infer_body::decode_infer_request`],
//! [`super::schema::ModelSchema::rows_from_body`] on a parsed `Value`) would: malformed JSON,
//! a duplicated key, an unexpected form, or any check failing. The caller then runs the general
//! path, which gives the one canonical error. So errors and field names cannot drift, and
//! wherever a fast path answers, it answers what the general path would (the `infer_body` and
//! `predict_body` fuzz targets assert it on every input).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use super::infer_body::{RawInput, RawRequest, field};
use super::schema::ModelSchema;
use super::tensor::{InferInput, TensorLimits, TensorSpec};

/// Any failure: the general path will say what it is.
fn decline<E: de::Error>() -> E {
    E::custom("not for the fast path")
}

/// Deserialises `body` (one JSON document, nothing after it but whitespace) with `seed`.
fn parse<'de, S: DeserializeSeed<'de>>(body: &'de [u8], seed: S) -> Option<S::Value> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = seed.deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    Some(value)
}

// ---------------------------------------------------------------- V2 infer

/// Sets a field once; a key given twice declines (`Value` would keep the last one).
fn once<'de, A: MapAccess<'de>, T: de::Deserialize<'de>>(
    slot: &mut Option<T>,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(decline());
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

/// A key, borrowed when it has no escapes.
struct Key<'a>(std::borrow::Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(v.to_string().into()))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = RawRequest<Number>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a V2 infer request")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRequest<Number>, A::Error> {
        let (mut id, mut inputs, mut outputs) = (None::<Option<String>>, None, None);
        let mut seen_outputs = false;
        while let Some(Key(key)) = map.next_key()? {
            match key.as_ref() {
                field::ID => once(&mut id, &mut map)?,
                field::INPUTS => {
                    if inputs.is_some() {
                        return Err(decline());
                    }
                    inputs = Some(map.next_value_seed(Inputs)?);
                }
                field::OUTPUTS => {
                    if seen_outputs {
                        return Err(decline());
                    }
                    seen_outputs = true;
                    outputs = map.next_value_seed(Outputs)?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(RawRequest {
            id: id.flatten(),
            inputs: inputs.ok_or_else(decline)?,
            outputs,
        })
    }
}

struct Inputs;

impl<'de> DeserializeSeed<'de> for Inputs {
    type Value = Vec<RawInput<Number>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Inputs {
    type Value = Vec<RawInput<Number>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("input tensors")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut inputs = Vec::with_capacity(seq.size_hint().unwrap_or(1));
        while let Some(input) = seq.next_element_seed(Input)? {
            inputs.push(input);
        }
        Ok(inputs)
    }
}

struct Input;

impl<'de> DeserializeSeed<'de> for Input {
    type Value = RawInput<Number>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Input {
    type Value = RawInput<Number>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an input tensor")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawInput<Number>, A::Error> {
        let (mut name, mut datatype, mut shape) = (None, None, None);
        let mut data: Option<(Vec<Number>, usize)> = None;
        while let Some(Key(key)) = map.next_key()? {
            match key.as_ref() {
                field::NAME => once(&mut name, &mut map)?,
                field::DATATYPE => once(&mut datatype, &mut map)?,
                field::SHAPE => once(&mut shape, &mut map)?,
                field::DATA => {
                    if data.is_some() {
                        return Err(decline());
                    }
                    // A few rows of a small model without growing.
                    let mut numbers = Vec::with_capacity(64);
                    let mut depth = 0;
                    map.next_value_seed(Nested {
                        out: &mut numbers,
                        level: 1,
                        deepest: &mut depth,
                    })?;
                    data = Some((numbers, depth));
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let (data, depth) = data.ok_or_else(decline)?;
        Ok(RawInput {
            name: name.ok_or_else(decline)?,
            datatype: datatype.ok_or_else(decline)?,
            shape: shape.ok_or_else(decline)?,
            data: Some(data),
            depth,
        })
    }
}

/// An array of numbers and arrays, read flat in row-major order.
struct Nested<'b> {
    out: &'b mut Vec<Number>,
    /// How many arrays enclose this one, itself included.
    level: usize,
    deepest: &'b mut usize,
}

impl<'de> DeserializeSeed<'de> for Nested<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Nested<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of numbers")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        *self.deepest = (*self.deepest).max(self.level);
        while seq
            .next_element_seed(Element {
                out: self.out,
                level: self.level,
                deepest: self.deepest,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// One element of a data array: a number, or an array one level deeper.
struct Element<'b> {
    out: &'b mut Vec<Number>,
    level: usize,
    deepest: &'b mut usize,
}

impl<'de> DeserializeSeed<'de> for Element<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Element<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or an array")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.out.push(Number::from(v));
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.out.push(Number::from(v));
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.out.push(Number::from_f64(v).ok_or_else(decline)?);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Nested {
            out: self.out,
            level: self.level + 1,
            deepest: self.deepest,
        }
        .visit_seq(seq)
    }
}

struct Outputs;

impl<'de> DeserializeSeed<'de> for Outputs {
    type Value = Option<Vec<String>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Outputs {
    type Value = Option<Vec<String>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("requested outputs")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut names = Vec::new();
        while let Some(name) = seq.next_element_seed(OutputName)? {
            names.push(name);
        }
        Ok(Some(names))
    }
}

struct OutputName;

impl<'de> DeserializeSeed<'de> for OutputName {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for OutputName {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("{\"name\": ...}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        let mut name = None;
        while let Some(Key(key)) = map.next_key()? {
            if key == field::NAME {
                once(&mut name, &mut map)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        name.ok_or_else(decline)
    }
}

struct Request;

impl<'de> DeserializeSeed<'de> for Request {
    type Value = RawRequest<Number>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawRequest<Number>, D::Error> {
        d.deserialize_map(RequestVisitor)
    }
}

/// A valid V2 infer body decoded as [`super::infer_body::decode_infer_request`] would, or
/// `None`.
pub fn decode_infer_body(
    body: &[u8],
    inputs: &[TensorSpec],
    outputs: &[TensorSpec],
    limits: TensorLimits,
) -> Option<InferInput> {
    // The byte scanner takes the common form; the serde reader everything else it can.
    let raw = super::infer_scan::request(body).or_else(|| parse(body, Request))?;
    raw.check(inputs, outputs, limits).ok()
}

// ---------------------------------------------------------------- /predict

/// Records (one object, or a list of them) read straight into rows in feature order.
struct Records<'s> {
    schema: &'s ModelSchema,
    max_rows: usize,
}

/// The rows, and whether the body was one record (not a list).
type Rows = (Vec<Vec<f64>>, bool);

impl<'de> DeserializeSeed<'de> for Records<'_> {
    type Value = Rows;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Rows, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Records<'_> {
    type Value = Rows;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record or a list of records")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Rows, A::Error> {
        Ok((vec![Record(self.schema).visit_map(map)?], true))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Rows, A::Error> {
        let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(self.max_rows));
        while let Some(row) = seq.next_element_seed(Record(self.schema))? {
            if rows.len() == self.max_rows {
                return Err(decline());
            }
            rows.push(row);
        }
        if rows.is_empty() {
            return Err(decline());
        }
        Ok((rows, false))
    }
}

struct Record<'s>(&'s ModelSchema);

impl<'de> DeserializeSeed<'de> for Record<'_> {
    type Value = Vec<f64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<f64>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Record<'_> {
    type Value = Vec<f64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<f64>, A::Error> {
        let features = &self.0.features;
        let mut row = vec![f64::NAN; features.len()];
        let mut given = 0usize;
        while let Some(Key(key)) = map.next_key()? {
            let index = features
                .iter()
                .position(|f| f.name == key.as_ref())
                .ok_or_else(decline)?;
            if !row[index].is_nan() {
                return Err(decline());
            }
            let number: Number = map.next_value()?;
            let x = number.as_f64().ok_or_else(decline)?;
            row[index] = features[index].accept_number(x).map_err(|_| decline())?;
            given += 1;
        }
        if given != features.len() {
            return Err(decline());
        }
        Ok(row)
    }
}

/// The rows of a valid `/predict` body as [`ModelSchema::rows_from_body`] would read them, or
/// `None`.
pub fn predict_rows(body: &[u8], schema: &ModelSchema, max_rows: usize) -> Option<Rows> {
    parse(body, Records { schema, max_rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::parse_json;
    use crate::model::infer_body::decode_infer_request;

    fn specs() -> (Vec<TensorSpec>, Vec<TensorSpec>) {
        let spec = TensorSpec::new;
        (
            vec![
                spec("input", "FP32", &[-1, 3]),
                spec("longs", "INT64", &[-1]),
            ],
            vec![
                spec("label", "INT64", &[-1]),
                spec("probabilities", "FP32", &[-1, 2]),
            ],
        )
    }

    const LIMITS: TensorLimits = TensorLimits { max_elements: 100 };

    /// What the general path says: the decoded request, or its error as text.
    fn general(body: &str) -> Result<InferInput, String> {
        let (inputs, outputs) = specs();
        let value = parse_json(body.as_bytes(), 32).map_err(|e| e.to_string())?;
        decode_infer_request(&value, &inputs, &outputs, LIMITS).map_err(|e| e.to_string())
    }

    fn fast(body: &str) -> Option<InferInput> {
        let (inputs, outputs) = specs();
        decode_infer_body(body.as_bytes(), &inputs, &outputs, LIMITS)
    }

    #[test]
    fn valid_requests_decode_as_the_general_path_does() {
        for body in [
            r#"{"inputs":[{"name":"input","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6.5]},
                {"name":"longs","shape":[2],"datatype":"INT64","data":[7,-8]}]}"#,
            r#"{"id":"r1","inputs":[{"data":[[1,2,3],[4,5,6]],"datatype":"FP32","name":"input","shape":[2,3]},
                {"name":"longs","shape":[2],"datatype":"INT64","data":[7e0, 8.0], "parameters": {"x": [1]}}],
               "outputs":[{"name":"probabilities","parameters":{}}], "parameters": null}"#,
            r#"{"id":null,"outputs":null,"inputs":[{"name":"longs","shape":[0],"datatype":"INT64","data":[]},
                {"name":"input","shape":[1,3],"datatype":"FP32","data":[1,[2,3]]}]}"#,
            r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1e-50,3.4028234663852886e38,-0.0]},
                {"name":"longs","shape":[1],"datatype":"INT64","data":[-9223372036854775808]}]}"#,
        ] {
            let expected = general(body).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(fast(body), Some(expected), "{body}");
            // The byte scanner reads all but the last (an integer only i64 holds: serde's).
            let scanned = crate::model::infer_scan::request(body.as_bytes());
            assert_eq!(
                scanned.is_some(),
                !body.contains("-9223372036854775808"),
                "{body}"
            );
        }
    }

    #[test]
    fn anything_else_is_left_to_the_general_path() {
        for body in [
            "",
            "[]",
            r#"{"inputs":[]}"#,
            // Two of a key: Value keeps the last, so only the general path may decide.
            r#"{"inputs":[{"name":"longs","name":"longs","shape":[1],"datatype":"INT64","data":[1]}]}"#,
            r#"{"id":1,"inputs":[]}"#,
            // Structs as arrays: serde would take them, the protocol does not.
            r#"{"inputs":[["input","FP32",[1,3],[1,2,3]]]}"#,
            r#"{"inputs":[{"name":"longs","shape":[1.0],"datatype":"INT64","data":[1]}]}"#,
            r#"{"inputs":[{"name":"longs","shape":[1],"datatype":"INT64","data":[[1]]}]}"#,
            r#"{"inputs":[{"name":"longs","shape":[1],"datatype":"INT64","data":[1.5]}]}"#,
            r#"{"inputs":[{"name":"longs","shape":[1],"datatype":"INT64","data":5}]}"#,
            r#"{"inputs":[{"name":"longs","shape":[2],"datatype":"INT64","data":[1]}]}"#,
            r#"{"inputs":[{"name":"longs","shape":[1],"datatype":"INT64","data":["1"]}]}"#,
            r#"{"inputs":[{"name":"longs","shape":[1],"datatype":"INT64","data":[1]}]} x"#,
            r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,1e39]}]}"#,
            r#"{"inputs":[{"name":"longs","shape":[1],"datatype":"INT64","data":[1]}],"outputs":[{"name":"nope"}]}"#,
            r#"{"inputs":[{"name":"longs","shape":[1],"datatype":"INT64","data":[1]}],"outputs":[["label"]]}"#,
            r#"{"inputs":[{"name":"longs","shape":[-1],"datatype":"INT64","data":[]}]}"#,
        ] {
            assert_eq!(fast(body), None, "{body}");
            // And the general path has its say: an error for each (or the same answer).
            assert!(general(body).is_err(), "{body}");
        }
    }

    #[test]
    fn predict_rows_match_the_general_path() {
        let schema =
            ModelSchema::from_json(include_str!("../../models/heart-disease/schema.json")).unwrap();
        let record = include_str!("../../models/heart-disease/example.json").trim();
        let general = |body: &str| {
            let value = parse_json(body.as_bytes(), 32).ok()?;
            schema.rows_from_body(&value, 4).ok()
        };
        let list = format!("[{record},{record}]");
        for body in [record.to_string(), list.clone(), format!(" {list} ")] {
            assert_eq!(predict_rows(body.as_bytes(), &schema, 4), general(&body));
            assert!(general(&body).is_some());
        }
        let too_many = format!("[{record},{record},{record},{record},{record}]");
        let unknown = record.replacen('{', r#"{"weight": 70, "#, 1);
        let twice = record.replacen('{', r#"{"age": 70, "#, 1);
        let missing = record.replacen(r#""age""#, r#""agee""#, 1);
        let text = record.replacen(r#""age": 63"#, r#""age": "63""#, 1);
        for body in [
            too_many,
            unknown,
            twice,
            missing,
            text,
            "[]".into(),
            "5".into(),
        ] {
            assert_eq!(predict_rows(body.as_bytes(), &schema, 4), None, "{body}");
        }
    }

    /// Bodies built from the protocol's parts in any order, shapes that fit or not, numbers of
    /// every kind, keys given twice, and bytes cut out: wherever the fast path answers, the
    /// general path gives the same request.
    mod equivalence {
        use super::*;
        use proptest::prelude::*;

        fn number() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<i32>().prop_map(|x| x.to_string()),
                any::<i64>().prop_map(|x| x.to_string()),
                any::<u64>().prop_map(|x| x.to_string()),
                (-1e6f64..1e6).prop_map(|x| format!("{x}")),
                any::<f32>()
                    .prop_filter("finite", |x| x.is_finite())
                    .prop_map(|x| format!("{x:e}")),
                Just("1e39".to_string()),
                Just("3.0".to_string()),
                Just("-0".to_string()),
                Just("\"1\"".to_string()),
            ]
        }

        fn data(rows: usize, width: usize) -> impl Strategy<Value = String> {
            (proptest::collection::vec(number(), rows * width), 0..3usize).prop_map(
                move |(numbers, form)| match form {
                    // Flat.
                    0 => format!("[{}]", numbers.join(",")),
                    // Nested by row.
                    1 if width > 0 => format!(
                        "[{}]",
                        numbers
                            .chunks(width)
                            .map(|r| format!("[{}]", r.join(",")))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    // Too deep.
                    _ => format!("[[{}]]", numbers.join(",")),
                },
            )
        }

        /// One input: mostly as the model declares it, sometimes not.
        fn input(name: &'static str, datatype: &'static str) -> impl Strategy<Value = String> {
            (
                prop_oneof![4 => Just(name), 1 => Just("other")],
                prop_oneof![4 => Just(datatype), 1 => Just("FP64")],
                0..3usize,
                prop_oneof![4 => Just(3usize), 1 => Just(2)],
                prop_oneof![9 => Just(false), 1 => Just(true)],
            )
                .prop_flat_map(|(name, datatype, rows, width, twice)| {
                    let shape = if name == "longs" {
                        format!("[{}]", rows * width)
                    } else {
                        format!("[{rows},{width}]")
                    };
                    (data(rows, width), Just((name, datatype, shape, twice))).prop_map(
                        |(data, (name, datatype, shape, twice))| {
                            let mut fields = vec![
                                format!(r#""name":"{name}""#),
                                format!(r#""datatype":"{datatype}""#),
                                format!(r#""shape":{shape}"#),
                                format!(r#""data":{data}"#),
                                r#""parameters":{"a":[1,{"b":null}]}"#.to_string(),
                            ];
                            if twice {
                                fields.push(format!(r#""name":"{name}""#));
                            }
                            fields
                        },
                    )
                })
                .prop_shuffle()
                .prop_map(|fields| format!("{{{}}}", fields.join(",")))
        }

        fn body() -> impl Strategy<Value = String> {
            (
                input("input", "FP32"),
                input("longs", "INT64"),
                proptest::option::of(input("input", "FP32")),
                any::<bool>(),
                proptest::option::of(prop_oneof![
                    Just("\"probabilities\""),
                    Just("\"label\""),
                    Just("\"map\"")
                ]),
                any::<bool>(),
            )
                .prop_map(|(a, b, extra, swap, output, id)| {
                    let mut inputs = if swap { vec![b, a] } else { vec![a, b] };
                    inputs.extend(extra);
                    let mut fields = vec![format!(r#""inputs":[{}]"#, inputs.join(","))];
                    if let Some(output) = output {
                        fields.push(format!(r#""outputs":[{{"name":{output}}}]"#));
                    }
                    if id {
                        fields.push(r#""id":"x""#.into());
                    }
                    format!("{{{}}}", fields.join(","))
                })
        }

        proptest! {
            /// Where the byte scanner reads a body, it reads what the serde reader reads; and it
            /// reads every uncut body of plain numbers.
            #[test]
            fn the_scanner_reads_what_serde_reads(
                body in body(),
                cut in prop_oneof![3 => Just(None), 1 => (0usize..400).prop_map(Some)],
            ) {
                let mut body = body.into_bytes();
                if let Some(at) = cut.filter(|at| *at < body.len()) {
                    body.remove(at);
                }
                let scanned = crate::model::infer_scan::request(&body);
                let serde = parse(&body, Request);
                if scanned.is_some() {
                    prop_assert_eq!(&scanned, &serde);
                }
                let text = String::from_utf8_lossy(&body);
                let plain = !text.contains("\"1\"") && !text.contains("-0,") && !text.contains("-0]")
                    && !text.contains('\\');
                if cut.is_none() && serde.is_some() && plain && scanned.is_none() {
                    // Integers beyond 64 bits are the only other thing it leaves.
                    prop_assert!(text.contains("-9223372036854775808"), "not scanned: {}", text);
                }
            }

            #[test]
            fn the_fast_path_answers_as_the_general_path_or_not_at_all(
                body in body(),
                cut in prop_oneof![3 => Just(None), 1 => (0usize..400).prop_map(Some)],
            ) {
                let mut body = body.into_bytes();
                if let Some(at) = cut.filter(|at| *at < body.len()) {
                    body.remove(at);
                }
                let (inputs, outputs) = specs();
                let fast = decode_infer_body(&body, &inputs, &outputs, LIMITS);
                let general = parse_json(&body, 32)
                    .ok()
                    .and_then(|v| decode_infer_request(&v, &inputs, &outputs, LIMITS).ok());
                if fast.is_some() {
                    prop_assert_eq!(fast, general);
                }
            }
        }
    }
}
