//! OTLP JSON span objects: the native twin of `JsonEncoder.span_text`
//! (decisiontrail/exporters/json_encoder.py), which stays the definition of every character.
//!
//! `json_span_text(span, wire_flags)` returns the same text as `JsonEncoder(wire_flags=...)
//! .span_text(span)`; `json_span_bytes` returns it UTF-8 encoded (what `JsonEncoder.span` returns).
//! Both read the same private fields of the SDK's ReadableSpan as the Python encoder and return
//! `None` for anything outside the exact types handled here (str, int within i64, float, bool,
//! bytes, and exact lists, tuples and dicts of them; dict and BoundedAttributes attribute maps;
//! tuple, list and BoundedList event and link sequences): the caller then takes the Python path.
//!
//! Strings are escaped as the json module's C `c_encode_basestring` does (not ASCII-escaped: only
//! `"`, `\` and the control characters below U+0020 are escaped, U+2028 and other non-ASCII
//! characters pass through); a str holding lone surrogates has no UTF-8 form and gives `None`.
//! Floats are `float.__repr__`'s text, taken from Python's repr except for integral values below
//! 2**53, whose repr is provably the integer's digits followed by `.0` (see `Writer::float`).
//! No Python code runs between the steps of a dict or deque iteration, so the iterators cannot see
//! a container change; a panic would still be caught and turned into `None`.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

/// Deeper nested attribute values take the Python path (which has its own recursion limit).
const MAX_DEPTH: u32 = 32;
/// 2**53: every integer of smaller magnitude is an exact double.
const EXACT_INTS: f64 = 9_007_199_254_740_992.0;
/// A per-thread buffer grown past this by a big span is given back.
const KEEP_BUFFER: usize = 1 << 20;

struct Types {
    bounded_attributes: Py<PyType>,
    bounded_list: Py<PyType>,
    trace_flags: Py<PyType>,
    // Of these exact types, the fields behind the properties the Python encoder reads are read
    // directly (a property is a Python call): SpanContext is a tuple whose properties return
    // its items, Status.description is `_description`, Link.context and .attributes are
    // `_context` and `_attributes`.
    span_context: Py<PyType>,
    status: Py<PyType>,
    link: Py<PyType>,
    trace_state: Py<PyType>,
}

static TYPES: GILOnceCell<Types> = GILOnceCell::new();

fn types(py: Python<'_>) -> Option<&Types> {
    TYPES
        .get_or_try_init(py, || -> PyResult<Types> {
            let attr = |module: &str, name: &str| crate::sdk_type(py, module, name);
            Ok(Types {
                bounded_attributes: attr("opentelemetry.attributes", "BoundedAttributes")?,
                bounded_list: attr("opentelemetry.sdk.util", "BoundedList")?,
                trace_flags: attr("opentelemetry.trace", "TraceFlags")?,
                span_context: attr("opentelemetry.trace", "SpanContext")?,
                status: attr("opentelemetry.trace", "Status")?,
                link: attr("opentelemetry.trace", "Link")?,
                trace_state: attr("opentelemetry.trace", "TraceState")?,
            })
        })
        .ok()
}

/// Bytes that `c_encode_basestring` escapes: `"`, `\` and U+0000..U+001F (all ASCII, so never
/// inside a multi-byte UTF-8 sequence).
const fn escapes() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
}

static ESCAPES: [bool; 256] = escapes();
/// "00" to "99".
const DIGITS2: &[u8; 200] = b"\
    0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849\
    5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";
const HEX: &[u8; 16] = b"0123456789abcdef";
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Whether no byte of an 8-byte word is to be escaped (a byte below 0x20, `"` or `\\`), a word at
/// a time. `x - 0x01.. & !x & 0x80..` is non-zero exactly when some byte of `x` is zero, and
/// `x - 0x20.. & !x & 0x80..` exactly when some byte is below 0x20.
fn clean_word(w: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut word = [0u8; 8];
    word.copy_from_slice(w);
    let x = u64::from_le_bytes(word);
    let below = |x: u64, n: u64| x.wrapping_sub(LO * n) & !x & HI;
    below(x, 0x20) | below(x ^ (LO * u64::from(b'"')), 1) | below(x ^ (LO * u64::from(b'\\')), 1) == 0
}

struct Writer<'py> {
    py: Python<'py>,
    types: &'py Types,
    out: String,
}

/// The text of an exact str (None for a subclass, a non-str or lone surrogates).
fn exact_str<'a>(v: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    v.downcast_exact::<PyString>().ok()?.to_str().ok()
}

/// The value of an exact int that fits in an i64.
fn exact_i64(v: &Bound<'_, PyAny>) -> Option<i64> {
    if v.is_exact_instance_of::<PyInt>() {
        v.extract::<i64>().ok()
    } else {
        None
    }
}

impl<'py> Writer<'py> {
    fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }

    /// `c_encode_basestring(s)`: quoted, `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other control
    /// characters as `\u00xx` (lower-case hex), everything else as it is.
    fn string(&mut self, s: &str) {
        let out = &mut self.out;
        out.push('"');
        let bytes = s.as_bytes();
        let (mut start, mut i) = (0, 0); // the run not yet copied starts at `start`
        while i < bytes.len() {
            let end = match bytes.get(i..i + 8) {
                Some(word) if clean_word(word) => {
                    i += 8;
                    continue;
                }
                Some(_) => i + 8,
                None => bytes.len(),
            };
            for (j, &b) in bytes.iter().enumerate().take(end).skip(i) {
                if !ESCAPES[b as usize] {
                    continue;
                }
                // `j` is an ASCII byte's index, hence a char boundary.
                out.push_str(&s[start..j]);
                match b {
                    b'"' => out.push_str("\\\""),
                    b'\\' => out.push_str("\\\\"),
                    b'\n' => out.push_str("\\n"),
                    b'\r' => out.push_str("\\r"),
                    b'\t' => out.push_str("\\t"),
                    0x08 => out.push_str("\\b"),
                    0x0c => out.push_str("\\f"),
                    _ => {
                        out.push_str("\\u00");
                        out.push(HEX[(b >> 4) as usize] as char);
                        out.push(HEX[(b & 0xf) as usize] as char);
                    }
                }
                start = j + 1;
            }
            i = end;
        }
        out.push_str(&s[start..]);
        out.push('"');
    }

    fn str_of(&mut self, v: &Bound<'_, PyAny>) -> Option<()> {
        let s = exact_str(v)?;
        self.string(s);
        Some(())
    }

    /// `int.__repr__` of an i64.
    fn int(&mut self, v: i64) {
        let mut buf = [0u8; 20];
        let mut n = v.unsigned_abs();
        let mut i = buf.len();
        while n >= 100 {
            let d = (n % 100) as usize * 2;
            n /= 100;
            i -= 2;
            buf[i..i + 2].copy_from_slice(&DIGITS2[d..d + 2]);
        }
        if n >= 10 {
            let d = n as usize * 2;
            i -= 2;
            buf[i..i + 2].copy_from_slice(&DIGITS2[d..d + 2]);
        } else {
            i -= 1;
            buf[i] = b'0' + n as u8;
        }
        if v < 0 {
            self.out.push('-');
        }
        self.ascii(&buf[i..]);
    }

    /// Bytes known to be ASCII (digits, hex, base64).
    fn ascii(&mut self, b: &[u8]) {
        if let Ok(s) = std::str::from_utf8(b) {
            self.out.push_str(s);
        }
    }

    /// `'"' + format(n, "032x") + '"'` of an exact int in 0..2**128 (a trace id).
    fn hex32(&mut self, v: &Bound<'_, PyAny>) -> Option<()> {
        if !v.is_exact_instance_of::<PyInt>() {
            return None;
        }
        let n: u128 = v.extract().ok()?;
        self.hex(n, 32);
        Some(())
    }

    /// `'"' + format(n, "016x") + '"'` of an exact int in 0..2**64 (a span id).
    fn hex16(&mut self, v: &Bound<'_, PyAny>) -> Option<()> {
        if !v.is_exact_instance_of::<PyInt>() {
            return None;
        }
        let n: u64 = v.extract().ok()?;
        self.hex(u128::from(n), 16);
        Some(())
    }

    fn hex(&mut self, n: u128, width: usize) {
        let mut buf = [b'"'; 34];
        for k in 0..width {
            buf[width - k] = HEX[((n >> (4 * k)) & 0xf) as usize];
        }
        self.ascii(&buf[..width + 2]);
    }

    /// json_encoder._float: `NaN`, `Infinity`, `-Infinity`, else `float.__repr__`.
    fn float(&mut self, f: &Bound<'_, PyFloat>) -> Option<()> {
        let v = f.value();
        if v.is_nan() {
            self.raw("NaN");
        } else if v.is_infinite() {
            self.raw(if v > 0.0 { "Infinity" } else { "-Infinity" });
        } else if v == v.trunc() && v.abs() < EXACT_INTS {
            // Every integer below 2**53 in magnitude is a double, one apart at most, so no
            // shorter digit string than the integer's own (trailing zeros aside) rounds to it;
            // repr writes it in fixed notation (its exponent is below 16) with ".0" added.
            if v == 0.0 {
                self.raw(if v.is_sign_negative() { "-0.0" } else { "0.0" });
            } else {
                self.int(v as i64);
                self.raw(".0");
            }
        } else {
            let text = f.repr().ok()?;
            self.raw(text.to_str().ok()?);
        }
        Some(())
    }

    /// `base64.b64encode(b).decode("ascii")`.
    fn base64(&mut self, b: &[u8]) {
        let out = &mut self.out;
        let mut chunks = b.chunks_exact(3);
        for c in &mut chunks {
            let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
            for shift in [18, 12, 6, 0] {
                out.push(B64[((n >> shift) & 63) as usize] as char);
            }
        }
        match *chunks.remainder() {
            [a] => {
                let n = u32::from(a) << 16;
                out.push(B64[((n >> 18) & 63) as usize] as char);
                out.push(B64[((n >> 12) & 63) as usize] as char);
                out.push_str("==");
            }
            [a, b2] => {
                let n = (u32::from(a) << 16) | (u32::from(b2) << 8);
                out.push(B64[((n >> 18) & 63) as usize] as char);
                out.push(B64[((n >> 12) & 63) as usize] as char);
                out.push(B64[((n >> 6) & 63) as usize] as char);
                out.push('=');
            }
            _ => {}
        }
    }

    /// json_encoder.json_value for exact types; None for anything else.
    fn value(&mut self, v: &Bound<'_, PyAny>, depth: u32) -> Option<()> {
        // the commonest first: strings, then numbers
        if let Ok(s) = v.downcast_exact::<PyString>() {
            let s = s.to_str().ok()?;
            self.raw("{\"stringValue\":");
            self.string(s);
            self.raw("}");
        } else if let Ok(f) = v.downcast_exact::<PyFloat>() {
            self.raw("{\"doubleValue\":");
            self.float(f)?;
            self.raw("}");
        } else if v.is_exact_instance_of::<PyInt>() {
            let n: i64 = v.extract().ok()?;
            self.raw("{\"intValue\":\"");
            self.int(n);
            self.raw("\"}");
        } else if let Ok(b) = v.downcast_exact::<PyBool>() {
            self.raw(if b.is_true() { "{\"boolValue\":true}" } else { "{\"boolValue\":false}" });
        } else if let Ok(b) = v.downcast_exact::<PyBytes>() {
            self.raw("{\"bytesValue\":\"");
            self.base64(b.as_bytes());
            self.raw("\"}");
        } else if depth >= MAX_DEPTH {
            return None;
        } else if let Ok(d) = v.downcast_exact::<PyDict>() {
            self.raw("{\"kvlistValue\":{\"values\":[");
            for (i, (k, x)) in d.iter().enumerate() {
                self.raw(if i == 0 { "{\"key\":" } else { ",{\"key\":" });
                self.str_of(&k)?;
                self.raw(",\"value\":");
                self.value(&x, depth + 1)?;
                self.raw("}");
            }
            self.raw("]}}");
        } else if let Ok(t) = v.downcast_exact::<PyTuple>() {
            self.array(t.iter(), depth)?;
        } else if let Ok(l) = v.downcast_exact::<PyList>() {
            self.array(l.iter(), depth)?;
        } else {
            return None;
        }
        Some(())
    }

    fn array<'a>(&mut self, items: impl Iterator<Item = Bound<'a, PyAny>>, depth: u32) -> Option<()> {
        self.raw("{\"arrayValue\":{\"values\":[");
        for (i, x) in items.enumerate() {
            if i != 0 {
                self.raw(",");
            }
            self.value(&x, depth + 1)?;
        }
        self.raw("]}}");
        Some(())
    }

    /// JsonEncoder.attributes: None, a dict or a BoundedAttributes (its `_dict`).
    fn attributes(&mut self, attrs: &Bound<'_, PyAny>) -> Option<()> {
        if attrs.is_none() {
            self.raw("[]");
            return Some(());
        }
        let bounded;
        let dict = if let Ok(d) = attrs.downcast_exact::<PyDict>() {
            d
        } else if attrs.get_type().is(self.types.bounded_attributes.bind(self.py)) {
            bounded = attrs.getattr(intern!(self.py, "_dict")).ok()?;
            bounded.downcast_exact::<PyDict>().ok()?
        } else {
            return None;
        };
        self.raw("[");
        for (i, (k, v)) in dict.iter().enumerate() {
            self.raw(if i == 0 { "{\"key\":" } else { ",{\"key\":" });
            self.str_of(&k)?;
            self.raw(",\"value\":");
            self.value(&v, 0)?;
            self.raw("}");
        }
        self.raw("]");
        Some(())
    }

    /// The items of a span's events or links (None, a tuple, a list or a BoundedList) and, for a
    /// BoundedList, its `dropped` count.
    fn items(&self, seq: &Bound<'py, PyAny>) -> Option<(Vec<Bound<'py, PyAny>>, i64)> {
        if seq.is_none() {
            return Some((Vec::new(), 0));
        }
        if let Ok(t) = seq.downcast_exact::<PyTuple>() {
            return Some((t.iter().collect(), 0));
        }
        if let Ok(l) = seq.downcast_exact::<PyList>() {
            return Some((l.iter().collect(), 0));
        }
        if seq.get_type().is(self.types.bounded_list.bind(self.py)) {
            let dq = seq.getattr(intern!(self.py, "_dq")).ok()?;
            let items = dq.try_iter().ok()?.collect::<PyResult<Vec<_>>>().ok()?;
            let dropped = exact_i64(&seq.getattr(intern!(self.py, "dropped")).ok()?)?;
            return Some((items, dropped));
        }
        None
    }

    /// `bool(trace_state)`: an exact TraceState is a Mapping over its `_dict`, so its truth is
    /// that dict's (the Python call to its `__len__` is skipped).
    fn truthy_state(&self, state: &Bound<'py, PyAny>) -> Option<bool> {
        if state.get_type().is(self.types.trace_state.bind(self.py)) {
            let d = state.getattr(intern!(self.py, "_dict")).ok()?;
            if let Ok(d) = d.downcast_exact::<PyDict>() {
                return Some(!d.is_empty());
            }
        }
        state.is_truthy().ok()
    }

    /// `ctx.<name>` of a SpanContext (item `index` of an exact one).
    fn ctx_field(&self, ctx: &Bound<'py, PyAny>, index: usize, name: &Bound<'py, PyString>) -> Option<Bound<'py, PyAny>> {
        if ctx.get_type().is(self.types.span_context.bind(self.py)) {
            ctx.downcast::<PyTuple>().ok()?.get_item(index).ok()
        } else {
            ctx.getattr(name).ok()
        }
    }

    /// `obj.<name>` for a property of `exact` whose value is the field `field` of an exact one.
    fn field(&self, obj: &Bound<'py, PyAny>, exact: &Py<PyType>, field: &Bound<'py, PyString>,
             name: &Bound<'py, PyString>) -> Option<Bound<'py, PyAny>> {
        obj.getattr(if obj.get_type().is(exact.bind(self.py)) { field } else { name }).ok()
    }

    /// JsonEncoder.span_text.
    fn span(&mut self, s: &Bound<'py, PyAny>, wire_flags: bool) -> Option<()> {
        let py = self.py;
        let ctx = s.getattr(intern!(py, "_context")).ok()?;
        if ctx.is_none() {
            return None;
        }
        let mut flags: i64 = 0x100;
        if !wire_flags {
            let tf = self.ctx_field(&ctx, 3, intern!(py, "trace_flags"))?;
            if !(tf.is_exact_instance_of::<PyInt>() || tf.get_type().is(self.types.trace_flags.bind(py))) {
                return None;
            }
            flags |= tf.extract::<i64>().ok()?;
        }
        let parent = s.getattr(intern!(py, "_parent")).ok()?;
        let has_parent = !parent.is_none();
        if has_parent && self.ctx_field(&parent, 2, intern!(py, "is_remote"))?.is_truthy().ok()? {
            flags |= 0x200;
        }
        let status = s.getattr(intern!(py, "_status")).ok()?;
        let code = exact_i64(&status.getattr(intern!(py, "_status_code")).ok()?.getattr(intern!(py, "_value_")).ok()?)?;
        let kind = exact_i64(&s.getattr(intern!(py, "_kind")).ok()?.getattr(intern!(py, "_value_")).ok()?)?;

        self.raw("{\"traceId\":");
        self.hex32(&self.ctx_field(&ctx, 0, intern!(py, "trace_id"))?)?;
        self.raw(",\"spanId\":");
        self.hex16(&self.ctx_field(&ctx, 1, intern!(py, "span_id"))?)?;
        self.raw(",\"name\":");
        self.str_of(&s.getattr(intern!(py, "_name")).ok()?)?;
        self.raw(",\"kind\":");
        self.int(kind.checked_add(1)?);
        self.raw(",\"startTimeUnixNano\":\"");
        self.time(&s.getattr(intern!(py, "_start_time")).ok()?)?;
        self.raw("\",\"endTimeUnixNano\":\"");
        self.time(&s.getattr(intern!(py, "_end_time")).ok()?)?;
        self.raw("\",\"attributes\":");
        self.attributes(&s.getattr(intern!(py, "_attributes")).ok()?)?;
        self.raw(",\"flags\":");
        self.int(flags);
        self.raw(",\"status\":{\"code\":");
        self.int(code);
        let description = self.field(&status, &self.types.status, intern!(py, "_description"), intern!(py, "description"))?;
        if !description.is_none() {
            self.raw(",\"message\":");
            self.str_of(&description)?;
        }
        self.raw("}");
        if has_parent {
            self.raw(",\"parentSpanId\":");
            self.hex16(&self.ctx_field(&parent, 1, intern!(py, "span_id"))?)?;
        }
        let state = self.ctx_field(&ctx, 4, intern!(py, "trace_state"))?;
        if self.truthy_state(&state)? {
            self.raw(",\"traceState\":");
            self.str_of(&state.call_method0(intern!(py, "to_header")).ok()?)?;
        }
        let (events, dropped) = self.items(&s.getattr(intern!(py, "_events")).ok()?)?;
        if !events.is_empty() {
            self.raw(",\"events\":[");
            for (i, e) in events.iter().enumerate() {
                self.raw(if i == 0 { "{\"timeUnixNano\":\"" } else { ",{\"timeUnixNano\":\"" });
                self.int(exact_i64(&e.getattr(intern!(py, "_timestamp")).ok()?)?);
                self.raw("\",\"name\":");
                self.str_of(&e.getattr(intern!(py, "_name")).ok()?)?;
                self.raw(",\"attributes\":");
                self.attributes(&e.getattr(intern!(py, "_attributes")).ok()?)?;
                self.raw("}");
            }
            self.raw("]");
        }
        let (links, _) = self.items(&s.getattr(intern!(py, "_links")).ok()?)?;
        if !links.is_empty() {
            self.raw(",\"links\":[");
            for (i, l) in links.iter().enumerate() {
                let lctx = self.field(l, &self.types.link, intern!(py, "_context"), intern!(py, "context"))?;
                self.raw(if i == 0 { "{\"traceId\":" } else { ",{\"traceId\":" });
                self.hex32(&self.ctx_field(&lctx, 0, intern!(py, "trace_id"))?)?;
                self.raw(",\"spanId\":");
                self.hex16(&self.ctx_field(&lctx, 1, intern!(py, "span_id"))?)?;
                self.raw(",\"attributes\":");
                self.attributes(&self.field(l, &self.types.link, intern!(py, "_attributes"), intern!(py, "attributes"))?)?;
                self.raw("}");
            }
            self.raw("]");
        }
        if dropped != 0 {
            self.raw(",\"droppedEventsCount\":");
            self.int(dropped);
        }
        self.raw("}");
        Some(())
    }

    /// `str(t or 0)` of a start or end time (an exact int, or None).
    fn time(&mut self, t: &Bound<'_, PyAny>) -> Option<()> {
        if t.is_none() {
            self.raw("0");
        } else {
            self.int(exact_i64(t)?);
        }
        Some(())
    }
}

/// The span's text handed to `finish` (which makes the Python object), or None. The text is
/// written into a buffer kept per thread (a span's text is a kilobyte or more: one allocation
/// saved per span); a re-entrant call (a property of some span calling back in) gets its own.
fn encode<T>(span: &Bound<'_, PyAny>, wire_flags: bool, finish: impl FnOnce(&str) -> T) -> Option<T> {
    thread_local! {
        static BUFFER: RefCell<String> = RefCell::new(String::with_capacity(4096));
    }
    let py = span.py();
    let run = |out: &mut String| -> Option<T> {
        out.clear();
        let mut text = std::mem::take(out);
        let done = catch_unwind(AssertUnwindSafe(|| {
            let mut w = Writer { py, types: types(py)?, out: std::mem::take(&mut text) };
            let done = w.span(span, wire_flags);
            text = w.out;
            done
        }))
        .ok()
        .flatten();
        let result = done.map(|()| finish(&text));
        *out = text;
        if out.capacity() > KEEP_BUFFER {
            *out = String::with_capacity(4096);
        }
        result
    };
    BUFFER
        .try_with(|cell| match cell.try_borrow_mut() {
            Ok(mut out) => run(&mut out),
            Err(_) => run(&mut String::with_capacity(4096)),
        })
        .ok()
        .flatten()
}

/// `JsonEncoder(wire_flags=wire_flags).span_text(span)`, or None (take the Python path).
#[pyfunction]
fn json_span_text<'py>(span: &Bound<'py, PyAny>, wire_flags: bool) -> Option<Bound<'py, PyString>> {
    encode(span, wire_flags, |text| PyString::new(span.py(), text))
}

/// `JsonEncoder(wire_flags=wire_flags).span(span)` (the text as UTF-8), or None.
#[pyfunction]
fn json_span_bytes<'py>(span: &Bound<'py, PyAny>, wire_flags: bool) -> Option<Bound<'py, PyBytes>> {
    encode(span, wire_flags, |text| PyBytes::new(span.py(), text.as_bytes()))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(json_span_text, m)?)?;
    m.add_function(wrap_pyfunction!(json_span_bytes, m)?)?;
    Ok(())
}
