//! decisiontrail's optional native accelerator: the same bytes as the pure-Python export path,
//! computed without per-value Python bytecode. Every function here has a pure-Python twin in the
//! `decisiontrail` package, which stays the default and the definition; the tests compare both.
//! A function returns `None` for any value outside what it handles, and the caller then takes
//! the Python path, so the accelerator never changes what is stored.
//!
//! - `chain.rs`: the hash chain's link hash (decisiontrail/chain.py);
//! - `proto.rs`: OTLP protobuf span messages (decisiontrail/exporters/otlp_proto.py);
//! - `json.rs`: OTLP JSON span objects (decisiontrail/exporters/json_encoder.py).

use pyo3::prelude::*;
use pyo3::types::PyType;

mod chain;
mod json;
mod proto;

#[pymodule]
fn decisiontrail_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    chain::register(m)?;
    proto::register(m)?;
    json::register(m)?;
    Ok(())
}

/// The SDK class `module.name`, for the stages that check exact SDK types (each keeps the ones it
/// needs in a `GILOnceCell`, loaded once).
pub(crate) fn sdk_type(py: Python<'_>, module: &str, name: &str) -> PyResult<Py<PyType>> {
    Ok(py.import(module)?.getattr(name)?.downcast_into::<PyType>()?.unbind())
}
