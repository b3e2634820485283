//! OTLP protobuf `Span` messages, natively: `encode_span(span)` is the twin of
//! `ProtoEncoder.span(s)` (decisiontrail/exporters/otlp_proto.py), which stays the definition.
//!
//! It reads the same private fields of the SDK's `ReadableSpan` as the Python encoder (`_context`,
//! `_name`, `_kind`, `_start_time`, `_end_time`, `_attributes`, `_events`, `_links`, `_status`,
//! `_parent`) and writes the same bytes into one buffer. It handles the exact types the SDK stores
//! (str, bool, int within int64, float, bytes, None, tuples/lists and dicts of those; dicts and
//! `BoundedAttributes`; tuples, lists and `BoundedList`s of events and links) and returns `None`
//! for anything else (a str with a lone surrogate, which Python replaces; subclasses; big ints;
//! odd types; deep nesting; any error), so that the caller takes the Python path. No key or value
//! caches: a str's UTF-8 is read in place, which costs less than a lookup would.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

/// The SDK classes whose exact instances are read through their private fields.
struct Types {
    bounded_attributes: Py<PyType>,
    bounded_list: Py<PyType>,
    span_context: Py<PyType>,
    trace_state: Py<PyType>,
    link: Py<PyType>,
    status: Py<PyType>,
    kinds: Vec<Py<PyAny>>, // SpanKind's members, index = value
    codes: Vec<Py<PyAny>>, // StatusCode's members, index = value
}

static TYPES: GILOnceCell<Types> = GILOnceCell::new();

fn load_types(py: Python<'_>) -> PyResult<Types> {
    let get = |module: &str, name: &str| crate::sdk_type(py, module, name);
    // an enum's members by value 0, 1, ... (the value is the index of its wire constant)
    let members = |module: &str, name: &str| -> PyResult<Vec<Py<PyAny>>> {
        let cls = py.import(module)?.getattr(name)?;
        Ok((0..8u8).map_while(|v| cls.call1((v,)).ok().map(Bound::unbind)).collect())
    };
    Ok(Types {
        bounded_attributes: get("opentelemetry.attributes", "BoundedAttributes")?,
        bounded_list: get("opentelemetry.sdk.util", "BoundedList")?,
        span_context: get("opentelemetry.trace.span", "SpanContext")?,
        trace_state: get("opentelemetry.trace.span", "TraceState")?,
        link: get("opentelemetry.trace", "Link")?,
        status: get("opentelemetry.trace.status", "Status")?,
        kinds: members("opentelemetry.trace", "SpanKind")?,
        codes: members("opentelemetry.trace.status", "StatusCode")?,
    })
}

/// Nested arrays and maps deeper than this take the Python path.
const MAX_DEPTH: u32 = 32;

/// The `Span` message body of `span`, exactly as `ProtoEncoder.span` writes it, or `None` when
/// the span holds anything this encoder does not handle (the caller then uses the Python path).
#[pyfunction]
fn encode_span<'py>(py: Python<'py>, span: &Bound<'py, PyAny>) -> Option<Bound<'py, PyBytes>> {
    // A panic (none is expected) must not cross into the export thread: it means "Python path".
    let buf = catch_unwind(AssertUnwindSafe(|| -> Option<Vec<u8>> {
        let types = TYPES.get_or_try_init(py, || load_types(py)).ok()?;
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        write_span(py, &mut buf, span, types)?;
        Some(buf)
    }));
    Some(PyBytes::new(py, &buf.ok()??))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_span, m)?)?;
    Ok(())
}

// -- wire format ---------------------------------------------------------------------------------

#[inline]
fn put_varint(buf: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

#[inline]
fn varint_len(n: u64) -> usize {
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

/// An optional varint field (a count): absent when 0.
#[inline]
fn put_count(buf: &mut Vec<u8>, tag: u8, n: u64) {
    if n != 0 {
        buf.push(tag);
        put_varint(buf, n);
    }
}

/// A length-delimited field whose body is known: tag, length, body.
#[inline]
fn put_field(buf: &mut Vec<u8>, tag: u8, body: &[u8]) {
    buf.push(tag);
    put_varint(buf, body.len() as u64);
    buf.extend_from_slice(body);
}

/// Opens a length-delimited field whose length is not known yet (one length byte reserved);
/// returns where its body starts, for `close`.
#[inline]
fn open(buf: &mut Vec<u8>, tag: u8) -> usize {
    buf.push(tag);
    buf.push(0);
    buf.len()
}

/// Writes the length of the field opened at `start`, moving its body if the length takes more
/// than the one byte reserved.
fn close(buf: &mut Vec<u8>, start: usize) {
    let n = buf.len() - start;
    if n < 0x80 {
        buf[start - 1] = n as u8;
        return;
    }
    let mut len = Vec::with_capacity(10);
    put_varint(&mut len, n as u64);
    let extra = len.len() - 1;
    buf.resize(buf.len() + extra, 0);
    buf.copy_within(start..start + n, start + extra);
    buf[start - 1..start - 1 + len.len()].copy_from_slice(&len);
}

/// `s` as UTF-8 when it is an exact str without lone surrogates.
#[inline]
fn exact_str<'a>(v: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    v.downcast_exact::<PyString>().ok()?.to_str().ok()
}

/// An optional field: None and "" are absent, an exact str is `tag` + its UTF-8.
fn put_opt_str(buf: &mut Vec<u8>, tag: u8, v: &Bound<'_, PyAny>) -> Option<()> {
    if v.is_none() {
        return Some(());
    }
    let s = exact_str(v)?;
    if !s.is_empty() {
        put_field(buf, tag, s.as_bytes());
    }
    Some(())
}

/// An exact int in 0..2^64 (None counts as 0, as Python's truth test of a time or count).
fn opt_u64(v: &Bound<'_, PyAny>) -> Option<u64> {
    if v.is_none() {
        return Some(0);
    }
    let i = v.downcast_exact::<PyInt>().ok()?;
    match i.extract::<i64>() {
        Ok(n) => u64::try_from(n).ok(), // (the faster conversion; negatives take the Python path)
        Err(_) => i.extract::<u64>().ok(),
    }
}

// -- attributes ----------------------------------------------------------------------------------

/// An attribute mapping as the Python encoder reads it: None, an exact dict, or an exact
/// BoundedAttributes (its `_dict`, an exact dict, and its `dropped`).
fn attribute_dict<'py>(v: &Bound<'py, PyAny>, t: &Types) -> Option<(Option<Bound<'py, PyDict>>, u64)> {
    if v.is_none() {
        return Some((None, 0));
    }
    if let Ok(d) = v.downcast_exact::<PyDict>() {
        return Some((Some(d.clone()), 0));
    }
    if v.is_exact_instance(t.bounded_attributes.bind(v.py())) {
        let py = v.py();
        let d = v.getattr(intern!(py, "_dict")).ok()?.downcast_into_exact::<PyDict>().ok()?;
        let dropped = opt_u64(&v.getattr(intern!(py, "dropped")).ok()?)?;
        return Some((Some(d), dropped));
    }
    None
}

/// Each attribute as a repeated `KeyValue` field `tag`.
fn put_attributes(buf: &mut Vec<u8>, tag: u8, attrs: Option<&Bound<'_, PyDict>>) -> Option<()> {
    if let Some(d) = attrs {
        for (k, v) in d.iter() {
            put_key_value(buf, tag, exact_str(&k)?, &v, 0)?;
        }
    }
    Some(())
}

/// A `KeyValue` message as field `tag`: key (1), value (2, an `AnyValue`).
fn put_key_value(buf: &mut Vec<u8>, tag: u8, key: &str, v: &Bound<'_, PyAny>, depth: u32) -> Option<()> {
    let kl = key.len();
    let key_field = 1 + varint_len(kl as u64) + kl;
    if let Ok(s) = v.downcast_exact::<PyString>() {
        // the common case, with every length known up front: no body to move
        let b = s.to_str().ok()?.as_bytes();
        let any = 1 + varint_len(b.len() as u64) + b.len();
        buf.reserve(key_field + any + 24);
        buf.push(tag);
        put_varint(buf, (key_field + 1 + varint_len(any as u64) + any) as u64);
        put_field(buf, 0x0a, key.as_bytes());
        buf.push(0x12);
        put_varint(buf, any as u64);
        put_field(buf, 0x0a, b);
        return Some(());
    }
    let start = open(buf, tag);
    put_field(buf, 0x0a, key.as_bytes());
    let value = open(buf, 0x12);
    put_any_value(buf, v, depth)?;
    close(buf, value);
    close(buf, start);
    Some(())
}

/// The body of an `AnyValue` message for `v`, as `encode_any_value` makes it.
fn put_any_value(buf: &mut Vec<u8>, v: &Bound<'_, PyAny>, depth: u32) -> Option<()> {
    if let Ok(s) = v.downcast_exact::<PyString>() {
        put_field(buf, 0x0a, s.to_str().ok()?.as_bytes());
    } else if let Ok(b) = v.downcast_exact::<PyBool>() {
        buf.extend_from_slice(if b.is_true() { b"\x10\x01" } else { b"\x10\x00" });
    } else if let Ok(i) = v.downcast_exact::<PyInt>() {
        buf.push(0x18);
        put_varint(buf, i.extract::<i64>().ok()? as u64); // int64: two's complement, ten bytes
    } else if let Ok(f) = v.downcast_exact::<PyFloat>() {
        buf.push(0x21);
        buf.extend_from_slice(&f.value().to_le_bytes());
    } else if v.is_none() {
    } else if let Ok(b) = v.downcast_exact::<PyBytes>() {
        put_field(buf, 0x3a, b.as_bytes());
    } else if depth >= MAX_DEPTH {
        return None;
    } else if let Ok(t) = v.downcast_exact::<PyTuple>() {
        put_array(buf, t.iter(), depth)?;
    } else if let Ok(l) = v.downcast_exact::<PyList>() {
        put_array(buf, l.iter(), depth)?;
    } else if let Ok(d) = v.downcast_exact::<PyDict>() {
        let kvlist = open(buf, 0x32);
        for (k, x) in d.iter() {
            put_key_value(buf, 0x0a, exact_str(&k)?, &x, depth + 1)?;
        }
        close(buf, kvlist);
    } else {
        return None;
    }
    Some(())
}

/// An `ArrayValue` (`AnyValue` field 5): each item as a `values` (1) `AnyValue`.
fn put_array<'py>(buf: &mut Vec<u8>, items: impl Iterator<Item = Bound<'py, PyAny>>, depth: u32) -> Option<()> {
    let array = open(buf, 0x2a);
    for x in items {
        let item = open(buf, 0x0a);
        put_any_value(buf, &x, depth + 1)?;
        close(buf, item);
    }
    close(buf, array);
    Some(())
}

// -- spans ---------------------------------------------------------------------------------------

/// (trace_id, span_id, is_remote, trace_state) of a span context: an exact SpanContext's tuple
/// items, else its properties.
fn context<'py>(ctx: &Bound<'py, PyAny>, t: &Types) -> Option<[Bound<'py, PyAny>; 4]> {
    let py = ctx.py();
    let (trace_id, span_id, remote, state) = if ctx.is_exact_instance(t.span_context.bind(py)) {
        let tup = ctx.downcast::<PyTuple>().ok()?;
        (tup.get_item(0).ok()?, tup.get_item(1).ok()?, tup.get_item(2).ok()?, tup.get_item(4).ok()?)
    } else {
        (
            ctx.getattr(intern!(py, "trace_id")).ok()?,
            ctx.getattr(intern!(py, "span_id")).ok()?,
            ctx.getattr(intern!(py, "is_remote")).ok()?,
            ctx.getattr(intern!(py, "trace_state")).ok()?,
        )
    };
    Some([trace_id, span_id, remote, state])
}

/// `tag`, 16, the trace id (big-endian), as `trace_id.to_bytes(16, "big")`.
fn put_trace_id(buf: &mut Vec<u8>, v: &Bound<'_, PyAny>) -> Option<()> {
    buf.extend_from_slice(b"\x0a\x10");
    buf.extend_from_slice(&v.downcast::<PyInt>().ok()?.extract::<u128>().ok()?.to_be_bytes());
    Some(())
}

/// `tag`, 8, a span id (big-endian), as `span_id.to_bytes(8, "big")`.
fn put_span_id(buf: &mut Vec<u8>, tag: u8, v: &Bound<'_, PyAny>) -> Option<()> {
    buf.extend_from_slice(&[tag, 0x08]);
    buf.extend_from_slice(&v.downcast::<PyInt>().ok()?.extract::<u64>().ok()?.to_be_bytes());
    Some(())
}

/// A sequence of events or links: None, an exact tuple or list, or an exact BoundedList (its
/// deque and its `dropped`). The items, and how many were dropped.
fn sequence<'py>(v: &Bound<'py, PyAny>, t: &Types) -> Option<(Vec<Bound<'py, PyAny>>, u64)> {
    if v.is_none() {
        return Some((Vec::new(), 0));
    }
    if let Ok(tup) = v.downcast_exact::<PyTuple>() {
        return Some((tup.iter().collect(), 0));
    }
    if let Ok(l) = v.downcast_exact::<PyList>() {
        return Some((l.iter().collect(), 0));
    }
    if v.is_exact_instance(t.bounded_list.bind(v.py())) {
        let py = v.py();
        let items = v.getattr(intern!(py, "_dq")).ok()?.try_iter().ok()?
            .collect::<PyResult<Vec<_>>>().ok()?;
        let dropped = opt_u64(&v.getattr(intern!(py, "dropped")).ok()?)?;
        return Some((items, dropped));
    }
    None
}

fn write_span(py: Python<'_>, buf: &mut Vec<u8>, s: &Bound<'_, PyAny>, t: &Types) -> Option<()> {
    let [trace_id, span_id, _, state] = context(&s.getattr(intern!(py, "_context")).ok()?, t)?;
    put_trace_id(buf, &trace_id)?;
    put_span_id(buf, 0x12, &span_id)?;
    put_trace_state(buf, &state, t)?;
    let parent = s.getattr(intern!(py, "_parent")).ok()?;
    let mut parent_remote = false;
    if !parent.is_none() {
        let [_, parent_id, remote, _] = context(&parent, t)?;
        put_span_id(buf, 0x22, &parent_id)?;
        parent_remote = remote.is_truthy().ok()?;
    }
    put_opt_str(buf, 0x2a, &s.getattr(intern!(py, "_name")).ok()?)?;
    let kind = s.getattr(intern!(py, "_kind")).ok()?;
    let kind = t.kinds.iter().position(|k| kind.is(k))?; // SpanKind's members, by value (0..4)
    buf.extend_from_slice(&[0x30, kind as u8 + 1]);
    let start = opt_u64(&s.getattr(intern!(py, "_start_time")).ok()?)?;
    let end = opt_u64(&s.getattr(intern!(py, "_end_time")).ok()?)?;
    if start != 0 {
        buf.push(0x39);
        buf.extend_from_slice(&start.to_le_bytes());
    }
    if end != 0 {
        buf.push(0x41);
        buf.extend_from_slice(&end.to_le_bytes());
    }
    let (attrs, dropped) = attribute_dict(&s.getattr(intern!(py, "_attributes")).ok()?, t)?;
    put_attributes(buf, 0x4a, attrs.as_ref())?;
    put_count(buf, 0x50, dropped);
    let (events, dropped) = sequence(&s.getattr(intern!(py, "_events")).ok()?, t)?;
    for e in &events {
        put_event(py, buf, e, t)?;
    }
    put_count(buf, 0x60, dropped);
    let (links, dropped) = sequence(&s.getattr(intern!(py, "_links")).ok()?, t)?;
    for link in &links {
        put_link(py, buf, link, t)?;
    }
    put_count(buf, 0x70, dropped);
    put_status(py, buf, &s.getattr(intern!(py, "_status")).ok()?, t)?;
    buf.extend_from_slice(if parent_remote { b"\x85\x01\x00\x03\x00\x00" } else { b"\x85\x01\x00\x01\x00\x00" });
    Some(())
}

/// `Span.trace_state` (3): "k=v,k=v" of an exact TraceState's entries, absent when it is empty.
fn put_trace_state(buf: &mut Vec<u8>, state: &Bound<'_, PyAny>, t: &Types) -> Option<()> {
    if state.is_none() {
        return Some(());
    }
    if !state.is_exact_instance(t.trace_state.bind(state.py())) {
        return None;
    }
    let d = state.getattr(intern!(state.py(), "_dict")).ok()?.downcast_into_exact::<PyDict>().ok()?;
    if d.is_empty() {
        return Some(());
    }
    let mut header = String::new();
    for (k, v) in d.iter() {
        if !header.is_empty() {
            header.push(',');
        }
        header.push_str(exact_str(&k)?);
        header.push('=');
        header.push_str(exact_str(&v)?);
    }
    put_field(buf, 0x1a, header.as_bytes());
    Some(())
}

/// `Span.events` (11): time (1), name (2), attributes (3), dropped attributes (4).
fn put_event(py: Python<'_>, buf: &mut Vec<u8>, e: &Bound<'_, PyAny>, t: &Types) -> Option<()> {
    let event = open(buf, 0x5a);
    let ts = opt_u64(&e.getattr(intern!(py, "_timestamp")).ok()?)?;
    if ts != 0 {
        buf.push(0x09);
        buf.extend_from_slice(&ts.to_le_bytes());
    }
    put_opt_str(buf, 0x12, &e.getattr(intern!(py, "_name")).ok()?)?;
    let (attrs, dropped) = attribute_dict(&e.getattr(intern!(py, "_attributes")).ok()?, t)?;
    put_attributes(buf, 0x1a, attrs.as_ref())?;
    put_count(buf, 0x20, dropped);
    close(buf, event);
    Some(())
}

/// `Span.links` (13) of an exact Link: trace id (1), span id (2), attributes (4), dropped
/// attributes (5), flags (6).
fn put_link(py: Python<'_>, buf: &mut Vec<u8>, link: &Bound<'_, PyAny>, t: &Types) -> Option<()> {
    if !link.is_exact_instance(t.link.bind(py)) {
        return None;
    }
    let [trace_id, span_id, remote, _] = context(&link.getattr(intern!(py, "_context")).ok()?, t)?;
    let remote = remote.is_truthy().ok()?;
    let (attrs, dropped) = attribute_dict(&link.getattr(intern!(py, "_attributes")).ok()?, t)?;
    let body = open(buf, 0x6a);
    put_trace_id(buf, &trace_id)?;
    put_span_id(buf, 0x12, &span_id)?;
    put_attributes(buf, 0x22, attrs.as_ref())?;
    put_count(buf, 0x28, dropped);
    buf.extend_from_slice(if remote { b"\x35\x00\x03\x00\x00" } else { b"\x35\x00\x01\x00\x00" });
    close(buf, body);
    Some(())
}

/// `Span.status` (15) of an exact Status: message (2), code (3); an empty message when unset.
fn put_status(py: Python<'_>, buf: &mut Vec<u8>, status: &Bound<'_, PyAny>, t: &Types) -> Option<()> {
    if status.is_none() {
        return Some(());
    }
    if !status.is_exact_instance(t.status.bind(py)) {
        return None;
    }
    let code = status.getattr(intern!(py, "_status_code")).ok()?;
    let code = t.codes.iter().position(|c| code.is(c))? as u64; // StatusCode's members, by value
    let body = open(buf, 0x7a);
    put_opt_str(buf, 0x12, &status.getattr(intern!(py, "_description")).ok()?)?;
    if code != 0 {
        buf.push(0x18);
        put_varint(buf, code);
    }
    close(buf, body);
    Some(())
}
