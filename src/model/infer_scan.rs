//! The first reader of a V2 infer body: a byte scanner for the common form (no escapes in
//! strings, plain numbers), which reads a tensor's numbers without serde's per-element calls,
//! the bulk of a large request's cost. It gives exactly what the serde reader in
//! [`super::json`] gives, or `None` for anything unusual (an escape, `-0`, an integer beyond
//! 64 bits, deep nesting, a key twice, malformed JSON), and that reader decides.

use serde_json::Number;

use super::infer_body::{RawInput, RawRequest, field};

/// Deeper values are left to the serde reader (the general path allows 32 levels).
const MAX_DEPTH: usize = 16;

/// Powers of ten exact in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A V2 infer body read as the serde reader would, or `None`.
pub(super) fn request(body: &[u8]) -> Option<RawRequest<Number>> {
    let mut s = Scanner { b: body, i: 0 };
    let (mut id, mut inputs, mut outputs) = (None::<Option<String>>, None, None);
    let mut seen_outputs = false;
    s.object(|s, key| {
        match key {
            field::ID => {
                if id.is_some() {
                    return None;
                }
                id = Some(s.nullable_string()?);
            }
            field::INPUTS => {
                if inputs.is_some() {
                    return None;
                }
                let mut list = Vec::with_capacity(1);
                s.array(|s| {
                    list.push(s.input()?);
                    Some(())
                })?;
                inputs = Some(list);
            }
            field::OUTPUTS => {
                if seen_outputs {
                    return None;
                }
                seen_outputs = true;
                outputs = s.outputs()?;
            }
            _ => s.skip(1)?,
        }
        Some(())
    })?;
    (s.peek().is_none()).then_some(())?;
    Some(RawRequest {
        id: id.flatten(),
        inputs: inputs?,
        outputs,
    })
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(c);
            }
            self.i += 1;
        }
        None
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        self.i += 1;
        Some(text)
    }

    fn nullable_string(&mut self) -> Option<Option<String>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        Some(Some(self.string()?.to_string()))
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.peek()?;
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    fn number(&mut self) -> Option<Number> {
        self.peek()?;
        let (number, used) = number(&self.b[self.i..])?;
        self.i += used;
        Some(number)
    }

    /// `{ "key": value, ... }`; `entry` reads each value.
    fn object(&mut self, mut entry: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.list(b'{', b'}', |s| {
            let key = s.string()?;
            s.eat(b':')?;
            entry(s, key)
        })
    }

    /// `[ value, ... ]`; `element` reads each value.
    fn array(&mut self, element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.list(b'[', b']', element)
    }

    /// `open item, item ... close`, possibly empty; `item` reads each.
    fn list(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        if self.peek()? == close {
            self.i += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                c if c == close => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Any value, checked as JSON and passed over.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|s, _| s.skip(depth + 1)),
            b'[' => self.array(|s| s.skip(depth + 1)),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(drop),
        }
    }

    /// One input tensor: name, datatype, shape and data once each, other keys passed over.
    fn input(&mut self) -> Option<RawInput<Number>> {
        let (mut name, mut datatype, mut shape) = (None, None, None);
        let mut data: Option<(Vec<Number>, usize)> = None;
        self.object(|s, key| {
            match key {
                field::NAME | field::DATATYPE => {
                    let slot = if key == field::NAME {
                        &mut name
                    } else {
                        &mut datatype
                    };
                    if slot.is_some() {
                        return None;
                    }
                    *slot = Some(s.string()?.to_string());
                }
                field::SHAPE => {
                    if shape.is_some() {
                        return None;
                    }
                    let mut dims = Vec::with_capacity(2);
                    s.array(|s| {
                        let n = s.number()?;
                        // As serde reads an i64: integers only, within range.
                        dims.push(if n.is_f64() { None } else { n.as_i64() }?);
                        Some(())
                    })?;
                    shape = Some(dims);
                }
                field::DATA => {
                    if data.is_some() {
                        return None;
                    }
                    // A few rows of a small model without growing.
                    let mut numbers = Vec::with_capacity(64);
                    let mut deepest = 0;
                    s.data(&mut numbers, 1, &mut deepest)?;
                    data = Some((numbers, deepest));
                }
                _ => s.skip(2)?,
            }
            Some(())
        })?;
        let (data, depth) = data?;
        Some(RawInput {
            name: name?,
            datatype: datatype?,
            shape: shape?,
            data: Some(data),
            depth,
        })
    }

    /// An array of numbers and arrays, flat in row-major order, as the serde reader's `Nested`.
    fn data(&mut self, out: &mut Vec<Number>, level: usize, deepest: &mut usize) -> Option<()> {
        if level > MAX_DEPTH {
            return None;
        }
        *deepest = (*deepest).max(level);
        self.array(|s| {
            if s.peek()? == b'[' {
                s.data(out, level + 1, deepest)
            } else {
                out.push(s.number()?);
                Some(())
            }
        })
    }

    fn outputs(&mut self) -> Option<Option<Vec<String>>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        let mut names = Vec::new();
        self.array(|s| {
            let mut name = None;
            s.object(|s, key| {
                if key == field::NAME {
                    if name.is_some() {
                        return None;
                    }
                    name = Some(s.string()?.to_string());
                    Some(())
                } else {
                    s.skip(3)
                }
            })?;
            names.push(name?);
            Some(())
        })?;
        Some(Some(names))
    }
}

/// One JSON number at the start of `bytes`, and its length, as serde_json makes it: an integer
/// that fits u64 (negative: i64) as such; with a fraction or an exponent, the correctly rounded
/// f64 (serde_json's `float_roundtrip`). `None` for `-0` (serde_json makes it -0.0), for integers
/// beyond 64 bits and for what is not a number.
fn number(bytes: &[u8]) -> Option<(Number, usize)> {
    let negative = bytes.first() == Some(&b'-');
    let start = usize::from(negative);
    // Digits before the point, then after it; up to 19 of them fit a u64 without a check.
    let (mut mantissa, mut i) = digits(bytes, start, 0);
    let integer_digits = i - start;
    if integer_digits == 0 || (bytes[start] == b'0' && integer_digits > 1) {
        return None;
    }
    let mut significant = integer_digits;
    let mut exponent: i64 = 0;
    let mut float = false;
    if bytes.get(i) == Some(&b'.') {
        float = true;
        let (m, end) = digits(bytes, i + 1, mantissa);
        if end == i + 1 {
            return None;
        }
        mantissa = m;
        exponent = -((end - i - 1) as i64);
        significant += end - i - 1;
        i = end;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        float = true;
        i += 1;
        let negative_exponent = bytes.get(i) == Some(&b'-');
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let first = i;
        let mut written: i64 = 0;
        while let Some(d) = bytes
            .get(i)
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|d| *d <= 9)
        {
            written = written.saturating_mul(10).saturating_add(i64::from(d));
            i += 1;
        }
        if i == first {
            return None;
        }
        exponent = exponent.saturating_add(if negative_exponent { -written } else { written });
    }
    // More than 19 digits may have wrapped the mantissa: only the exact parse may read them.
    let exact = significant <= 19;
    if !float {
        return match (exact, negative) {
            // Twenty digits may still fit a u64; i64 holds at most 19.
            (false, false) => Some((
                Number::from(std::str::from_utf8(&bytes[..i]).ok()?.parse::<u64>().ok()?),
                i,
            )),
            (false, true) => None,
            // serde_json reads "-0" as the float -0.0; that and anything below i64 are serde's.
            (true, true) if mantissa == 0 || mantissa > i64::MAX as u64 => None,
            (true, true) => Some((Number::from(-(mantissa as i64)), i)),
            (true, false) => Some((Number::from(mantissa), i)),
        };
    }
    // Exact mantissa and power of ten: one correctly rounded operation (Clinger's fast path).
    let value = if exact && mantissa < (1 << 53) && (-22..=22).contains(&exponent) {
        let m = mantissa as f64;
        if exponent < 0 {
            m / POW10[(-exponent) as usize]
        } else {
            m * POW10[exponent as usize]
        }
    } else {
        std::str::from_utf8(&bytes[start..i])
            .ok()?
            .parse::<f64>()
            .ok()?
    };
    let value = if negative { -value } else { value };
    value.is_finite().then_some(())?;
    Some((Number::from_f64(value)?, i))
}

/// ASCII digits from `i` on, accumulated into `mantissa` (wrapping past 19 digits: the caller
/// counts them), and where they end.
fn digits(bytes: &[u8], mut i: usize, mut mantissa: u64) -> (u64, usize) {
    while let Some(&c) = bytes.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    (mantissa, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_come_out_as_serde_json_makes_them() {
        for text in [
            "0",
            "7",
            "-8",
            "2.3",
            "0.1",
            "1e-50",
            "2.5E+3",
            "-7e0",
            "3.4028234663852886e38",
            "18446744073709551615",
            "-9223372036854775807",
            "123456789012345678901.5",
            "0.30000000000000004",
            "1e22",
            "1e23",
            "9007199254740993.0",
            "1.7976931348623157e308",
        ] {
            let expected: Number = serde_json::from_str(text).unwrap();
            assert_eq!(
                number(text.as_bytes()),
                Some((expected, text.len())),
                "{text}"
            );
        }
        for text in [
            "-0",
            "-0.0",
            "18446744073709551616",
            "-9223372036854775808",
            "01",
            "1.",
            ".5",
            "1e",
            "-",
            "x",
            "1e999",
        ] {
            let got = number(text.as_bytes());
            // Left to serde: declined, or (for -0.0) the same as serde gives.
            if let Some((n, used)) = got {
                assert_eq!(used, text.len(), "{text}");
                assert_eq!(Some(n), serde_json::from_str::<Number>(text).ok(), "{text}");
            }
        }
    }
}
