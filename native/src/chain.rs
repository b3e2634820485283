//! The hash chain's link hash: the native twin of `decisiontrail.chain.chain_hash`'s Python path
//! (`_payload_text` + sha256). It writes the same canonical JSON text into one buffer, the text
//! `json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` gives for
//! `{"attributes", "event", "span_id", "time_unix_nano", "trace_id"}`, and returns its sha256 in
//! lower-case hex. Any value outside what it writes returns `None` and the caller takes the
//! Python path:
//!
//! - keys: exact `str` only, sorted by code point (UTF-8 byte order is code point order);
//! - values: exact `str`, `bool`, `int` within i64, `float`, `None`, and exact `list` / `tuple`
//!   of those (nested a few levels); no `dict` values, no subclasses of any of these types;
//! - strings: no lone surrogates (they do not encode as UTF-8: Python hashes them with
//!   `surrogatepass`); escaped as the json module's `c_encode_basestring` does;
//! - floats: `float.__repr__` itself (Python's shortest round-trip text), except the
//!   non-finite ones, written as json writes them (`NaN`, `Infinity`, `-Infinity`).
//!
//! Registered into the module by `register`.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use sha2::{Digest, Sha256};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The keys `chain_hash` can be told to leave out (the chain's own hash and the input).
const MAX_LEAVE_OUT: usize = 4;
/// How deep lists in lists are written before the Python path takes over.
const MAX_DEPTH: usize = 8;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// What `c_encode_basestring` writes for each byte: 0 verbatim, b'u' as `\u00XX`, else `\` + it.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes of `w` is below 0x20, `"` or `\` (exact as a yes/no: the
/// classic "has a zero byte" / "has a byte less than n" bit tricks, n <= 128).
fn needs_escape(w: u64) -> bool {
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * b'"' as u64);
    let quote = q.wrapping_sub(ONES) & !q;
    let s = w ^ (ONES * b'\\' as u64);
    let backslash = s.wrapping_sub(ONES) & !s;
    (below_space | quote | backslash) & HIGHS != 0
}

/// A JSON string as `json.encoder.c_encode_basestring` writes it (no `ensure_ascii`): `"` `\`
/// and the control characters escaped, everything else (U+007F, U+2028, emoji...) verbatim.
fn write_str(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let n = bytes.len();
    buf.reserve(n + 2);
    buf.push(b'"');
    let (mut start, mut i) = (0, 0);
    while i < n {
        // Eight bytes at a time past the runs with nothing to escape (nearly all text)...
        while i + 8 <= n {
            let w = &bytes[i..i + 8];
            if needs_escape(u64::from_le_bytes([
                w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
            ])) {
                break;
            }
            i += 8;
        }
        // ...then byte by byte through the eight that hold one (or the tail).
        let end = n.min(i + 8);
        while i < end {
            let b = bytes[i];
            let e = ESCAPE[b as usize];
            if e != 0 {
                buf.extend_from_slice(&bytes[start..i]);
                if e == b'u' {
                    buf.extend_from_slice(b"\\u00");
                    buf.push(HEX[(b >> 4) as usize]);
                    buf.push(HEX[(b & 0xf) as usize]);
                } else {
                    buf.push(b'\\');
                    buf.push(e);
                }
                start = i + 1;
            }
            i += 1;
        }
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

/// An integer as `int.__repr__` writes it.
fn write_int(buf: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        buf.push(b'-');
    }
    buf.extend_from_slice(&digits[i..]);
}

/// A float as the json module writes it: `float.__repr__` for a finite one (called, not
/// reimplemented), json's names for the others (allow_nan).
fn write_float(buf: &mut Vec<u8>, v: &Bound<'_, PyAny>, f: f64) -> Option<()> {
    if f.is_nan() {
        buf.extend_from_slice(b"NaN");
    } else if f.is_infinite() {
        buf.extend_from_slice(if f > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        let text = v.repr().ok()?;
        buf.extend_from_slice(text.to_str().ok()?.as_bytes());
    }
    Some(())
}

/// One attribute value; `None` for anything the Python path must write.
fn write_value(buf: &mut Vec<u8>, v: &Bound<'_, PyAny>, depth: usize) -> Option<()> {
    if let Ok(s) = v.downcast_exact::<PyString>() {
        write_str(buf, s.to_str().ok()?);
    } else if let Ok(b) = v.downcast_exact::<PyBool>() {
        buf.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
    } else if v.is_exact_instance_of::<PyInt>() {
        write_int(buf, v.extract::<i64>().ok()?);
    } else if let Ok(f) = v.downcast_exact::<PyFloat>() {
        write_float(buf, v, f.value())?;
    } else if v.is_none() {
        buf.extend_from_slice(b"null");
    } else if let Ok(t) = v.downcast_exact::<PyTuple>() {
        write_array(buf, t.iter(), depth)?;
    } else if let Ok(l) = v.downcast_exact::<PyList>() {
        write_array(buf, l.iter(), depth)?;
    } else {
        return None; // dicts, subclasses, sets, bytes, objects: the Python path (and its errors)
    }
    Some(())
}

fn write_array<'py>(
    buf: &mut Vec<u8>,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    depth: usize,
) -> Option<()> {
    if depth >= MAX_DEPTH {
        return None;
    }
    buf.push(b'[');
    let mut first = true;
    for item in items {
        if !first {
            buf.push(b',');
        }
        first = false;
        write_value(buf, &item, depth + 1)?;
    }
    buf.push(b']');
    Some(())
}

/// An exact `str`'s UTF-8 text; `None` for any other type and for lone surrogates.
fn exact_str<'a>(v: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    v.downcast_exact::<PyString>().ok()?.to_str().ok()
}

fn payload_hash(
    name: &Bound<'_, PyAny>,
    attributes: &Bound<'_, PyAny>,
    time_unix_nano: &Bound<'_, PyAny>,
    trace_id: &Bound<'_, PyAny>,
    span_id: &Bound<'_, PyAny>,
    leave_out: &Bound<'_, PyAny>,
) -> Option<[u8; 64]> {
    let attributes = attributes.downcast_exact::<PyDict>().ok()?;
    let leave_out = leave_out.downcast_exact::<PyTuple>().ok()?;
    let n_skip = leave_out.len();
    if n_skip > MAX_LEAVE_OUT {
        return None;
    }
    let skip: [Option<Bound<'_, PyAny>>; MAX_LEAVE_OUT] = std::array::from_fn(|i| {
        if i < n_skip {
            leave_out.get_item(i).ok()
        } else {
            None
        }
    });
    let mut skip_text: [&str; MAX_LEAVE_OUT] = [""; MAX_LEAVE_OUT];
    for (slot, k) in skip_text.iter_mut().zip(skip.iter()).take(n_skip) {
        *slot = exact_str(k.as_ref()?)?;
    }
    let skip_text = &skip_text[..n_skip];

    // The items first (no Python code runs while the dict is walked), then sorted by key.
    let items: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> = attributes.iter().collect();
    let mut entries: Vec<(&str, &Bound<'_, PyAny>)> = Vec::with_capacity(items.len());
    for (k, v) in items.iter() {
        let key = exact_str(k)?;
        if !skip_text.contains(&key) {
            entries.push((key, v));
        }
    }
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));

    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    buf.extend_from_slice(b"{\"attributes\":{");
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_str(&mut buf, key);
        buf.push(b':');
        write_value(&mut buf, value, 0)?;
    }
    buf.extend_from_slice(b"},\"event\":");
    write_str(&mut buf, exact_str(name)?);
    buf.extend_from_slice(b",\"span_id\":");
    write_str(&mut buf, exact_str(span_id)?);
    buf.extend_from_slice(b",\"time_unix_nano\":");
    if !time_unix_nano.is_exact_instance_of::<PyInt>() {
        return None;
    }
    write_int(&mut buf, time_unix_nano.extract::<i64>().ok()?);
    buf.extend_from_slice(b",\"trace_id\":");
    write_str(&mut buf, exact_str(trace_id)?);
    buf.push(b'}');

    let digest = Sha256::digest(&buf);
    let mut hex = [0u8; 64];
    for (i, b) in digest.iter().enumerate() {
        hex[2 * i] = HEX[(b >> 4) as usize];
        hex[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
    Some(hex)
}

/// `chain_hash(name, attributes, time_unix_nano, trace_id, span_id, leave_out) -> str | None`:
/// the sha256 hex of the canonical JSON of the link payload, the keys in the tuple `leave_out`
/// left out of `attributes` (a `dict`); `None` when any value is outside what this writes.
/// Never raises and never panics across the boundary: any failure is `None`.
#[pyfunction]
fn chain_hash<'py>(
    py: Python<'py>,
    name: &Bound<'py, PyAny>,
    attributes: &Bound<'py, PyAny>,
    time_unix_nano: &Bound<'py, PyAny>,
    trace_id: &Bound<'py, PyAny>,
    span_id: &Bound<'py, PyAny>,
    leave_out: &Bound<'py, PyAny>,
) -> Option<Bound<'py, PyString>> {
    let hex = catch_unwind(AssertUnwindSafe(|| {
        payload_hash(
            name,
            attributes,
            time_unix_nano,
            trace_id,
            span_id,
            leave_out,
        )
    }))
    .ok()??;
    // The hex digits are ASCII.
    let text = std::str::from_utf8(&hex).ok()?;
    Some(PyString::new(py, text))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(chain_hash, m)?)?;
    Ok(())
}
