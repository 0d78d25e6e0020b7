//! Dynamic batching: requests for the model that wait at the same moment run as one ONNX
//! Runtime call, and each gets its own rows of the outputs back.
//!
//! Every run pays a fixed cost (a few microseconds of ONNX Runtime's own work for a small
//! model, the weights' trip through the cache for a large one) whatever its rows; requests that
//! share a run share that cost. The settings mean what Triton's dynamic batcher's do:
//! `BATCH_MAX_ROWS` is the largest run made of several requests (Triton's preferred batch size
//! bounded by `max_batch_size`), `BATCH_MAX_DELAY` how long the first request of a run may wait
//! for others (`max_queue_delay_microseconds`). With the default delay of 0 only requests that
//! are already queued when a worker turns to the queue are joined, so an idle server adds no
//! latency: batches form exactly when requests would otherwise wait for a worker anyway.
//!
//! This module is the pure part: which requests may share a run, joining their inputs and
//! splitting the outputs, and the default row limit from measured run times. The inference
//! workers ([`super::pool`]) apply it.

use std::time::Duration;

use super::tensor::{Tensor, TensorData};

/// How the inference workers join queued requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// The most rows one joined run may have; 1 turns batching off. A request larger than
    /// this still runs, alone.
    pub max_rows: usize,
    /// How long the first request of a run may wait for others to join it.
    pub max_delay: Duration,
}

impl Batching {
    /// No joining: every request is its own run.
    pub const OFF: Batching = Batching {
        max_rows: 1,
        max_delay: Duration::ZERO,
    };

    /// True when requests may be joined at all.
    pub fn on(&self) -> bool {
        self.max_rows > 1
    }
}

/// Rows of a request: the first dimension of its first input (1 for a scalar input).
pub fn rows_of(inputs: &[Tensor]) -> usize {
    inputs
        .first()
        .and_then(|t| t.shape.first())
        .and_then(|r| usize::try_from(*r).ok())
        .unwrap_or(1)
}

/// True when `b`'s inputs can be appended to `a`'s along the first dimension: the same inputs
/// by name and element type, each with at least one dimension, the same dimensions after the
/// first, and every input with the same rows.
pub fn joinable(a: &[Tensor], b: &[Tensor]) -> bool {
    let rows = |inputs: &[Tensor]| {
        let first = inputs.first().and_then(|t| t.shape.first()).copied();
        first.filter(|r| inputs.iter().all(|t| t.shape.first() == Some(r)))
    };
    rows(a).is_some()
        && rows(b).is_some()
        && a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name == y.name
                && x.data.datatype() == y.data.datatype()
                && x.shape.len() == y.shape.len()
                && x.shape[1..] == y.shape[1..]
        })
}

/// The requests' inputs appended along the first dimension, in order. The requests must be
/// [`joinable`] with the first.
pub fn join(requests: Vec<Vec<Tensor>>) -> Vec<Tensor> {
    let mut requests = requests.into_iter();
    let Some(mut joined) = requests.next() else {
        return Vec::new();
    };
    for request in requests {
        for (into, tensor) in joined.iter_mut().zip(request) {
            into.shape[0] += tensor.shape[0];
            append(&mut into.data, tensor.data);
        }
    }
    joined
}

fn append(into: &mut TensorData, from: TensorData) {
    match (into, from) {
        (TensorData::F32(a), TensorData::F32(b)) => a.extend(b),
        (TensorData::F64(a), TensorData::F64(b)) => a.extend(b),
        (TensorData::I32(a), TensorData::I32(b)) => a.extend(b),
        (TensorData::I64(a), TensorData::I64(b)) => a.extend(b),
        // `joinable` compared the element types.
        _ => unreachable!("joined inputs of different element types"),
    }
}

/// A joined run's outputs cut back into each request's rows (`rows`, in the order joined).
/// `None` when an output does not have one entry per row along its first dimension (a model
/// that reduces over the batch): such a run cannot be split, and its requests must run alone.
pub fn split(outputs: Vec<Tensor>, rows: &[usize]) -> Option<Vec<Vec<Tensor>>> {
    let total: usize = rows.iter().sum();
    let mut each: Vec<Vec<Tensor>> = rows
        .iter()
        .map(|_| Vec::with_capacity(outputs.len()))
        .collect();
    for output in outputs {
        if output.shape.first().and_then(|r| usize::try_from(*r).ok()) != Some(total) {
            return None;
        }
        let per_row = output.data.len().checked_div(total)?;
        if per_row * total != output.data.len() {
            return None;
        }
        let mut start = 0;
        for (request, &n) in each.iter_mut().zip(rows) {
            let mut shape = output.shape.clone();
            shape[0] = n as i64;
            request.push(Tensor {
                name: output.name.clone(),
                shape,
                data: slice(&output.data, start * per_row, (start + n) * per_row),
            });
            start += n;
        }
    }
    Some(each)
}

fn slice(data: &TensorData, from: usize, to: usize) -> TensorData {
    match data {
        TensorData::F32(v) => TensorData::F32(v[from..to].to_vec()),
        TensorData::F64(v) => TensorData::F64(v[from..to].to_vec()),
        TensorData::I32(v) => TensorData::I32(v[from..to].to_vec()),
        TensorData::I64(v) => TensorData::I64(v[from..to].to_vec()),
    }
}

/// Doubling the rows of a run is "efficient" while it costs less than this many times the
/// smaller run: past it, the run is mostly per-row work, and a larger batch only makes its
/// first request wait longer for little saved.
pub const EFFICIENT_DOUBLING: f64 = 1.8;

/// The default `BATCH_MAX_ROWS`: the largest measured row count (doubling from 1, at most
/// `cap`) up to which each doubling cost less than [`EFFICIENT_DOUBLING`] times the run before.
/// `cost(rows)` is the typical run of that many rows.
pub fn efficient_rows(
    cap: usize,
    mut cost: impl FnMut(usize) -> Result<Duration, String>,
) -> Result<usize, String> {
    let mut rows = 1;
    let mut before = cost(1)?;
    while rows * 2 <= cap {
        let now = cost(rows * 2)?;
        if now.as_secs_f64() >= before.as_secs_f64() * EFFICIENT_DOUBLING {
            break;
        }
        rows *= 2;
        before = now;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, rows: i64, width: i64, first: f32) -> Tensor {
        Tensor {
            name: name.into(),
            shape: vec![rows, width],
            data: TensorData::F32((0..rows * width).map(|i| first + i as f32).collect()),
        }
    }

    #[test]
    fn requests_join_only_with_the_same_inputs_and_row_shape() {
        let a = vec![input("x", 1, 13, 0.0)];
        assert!(joinable(&a, &[input("x", 7, 13, 0.0)]));
        assert!(
            !joinable(&a, &[input("y", 1, 13, 0.0)]),
            "another input name"
        );
        assert!(
            !joinable(&a, &[input("x", 1, 12, 0.0)]),
            "another row width"
        );
        let mut doubles = input("x", 1, 13, 0.0);
        doubles.data = TensorData::F64(vec![0.0; 13]);
        assert!(!joinable(&a, &[doubles]), "another element type");
        let scalar = Tensor {
            name: "x".into(),
            shape: vec![],
            data: TensorData::F32(vec![1.0]),
        };
        assert!(
            !joinable(std::slice::from_ref(&scalar), std::slice::from_ref(&scalar)),
            "no row dimension"
        );
        let two = vec![input("x", 1, 13, 0.0), input("z", 2, 3, 0.0)];
        assert!(!joinable(&two, &two), "inputs disagree on rows");
    }

    #[test]
    fn joined_inputs_split_back_into_each_requests_rows() {
        let requests = vec![
            vec![input("x", 1, 2, 0.0)],
            vec![input("x", 3, 2, 10.0)],
            vec![input("x", 2, 2, 100.0)],
        ];
        let rows: Vec<usize> = requests.iter().map(|r| rows_of(r)).collect();
        let joined = join(requests.clone());
        assert_eq!(joined[0].shape, vec![6, 2]);
        // An identity model: the outputs are the inputs, so each request gets its own back.
        let back = split(joined, &rows).unwrap();
        assert_eq!(back, requests);
    }

    #[test]
    fn an_output_without_a_row_per_request_cannot_be_split() {
        let reduced = Tensor {
            name: "mean".into(),
            shape: vec![1],
            data: TensorData::F32(vec![0.5]),
        };
        assert!(split(vec![reduced], &[1, 2]).is_none());
        let labels = Tensor {
            name: "label".into(),
            shape: vec![3],
            data: TensorData::I64(vec![0, 1, 1]),
        };
        let back = split(vec![labels], &[1, 2]).unwrap();
        assert_eq!(back[1][0].shape, vec![2]);
        assert_eq!(back[1][0].data, TensorData::I64(vec![1, 1]));
    }

    fn costs(table: &'static [(usize, u64)]) -> impl FnMut(usize) -> Result<Duration, String> {
        move |rows| {
            table
                .iter()
                .find(|(r, _)| *r == rows)
                .map(|(_, us)| Duration::from_micros(*us))
                .ok_or_else(|| format!("{rows} rows not in the table"))
        }
    }

    #[test]
    fn the_efficient_batch_ends_where_doubling_costs_nearly_double() {
        // A fixed cost of 10 us and 1 us per row: doubling stays cheap up to 8 rows (18 us),
        // 16 rows cost 26 us (1.44x), 32 rows 42 us (1.6x), 64 rows 74 us (1.76x), 128 rows
        // 138 us (1.86x): past the limit.
        let table: &[(usize, u64)] = &[
            (1, 11),
            (2, 12),
            (4, 14),
            (8, 18),
            (16, 26),
            (32, 42),
            (64, 74),
            (128, 138),
            (256, 266),
        ];
        assert_eq!(efficient_rows(1024, costs(table)).unwrap(), 64);
        assert_eq!(efficient_rows(16, costs(table)).unwrap(), 16, "capped");
        assert_eq!(efficient_rows(1, costs(table)).unwrap(), 1);
        // All per-row cost: no batch is worth waiting for.
        let linear: &[(usize, u64)] = &[(1, 100), (2, 200), (4, 400)];
        assert_eq!(efficient_rows(1024, costs(linear)).unwrap(), 1);
    }
}
