//! decisiontrail's optional native accelerator: the same bytes as the pure-Python export path,
//! computed without per-value Python bytecode. Every function here has a pure-Python twin in the
//! `decisiontrail` package, which stays the default and the definition; the tests compare both.
//! A function returns `None` for any value outside what it handles, and the caller then takes
//! the Python path, so the accelerator never changes what is stored.

use pyo3::prelude::*;

#[pymodule]
fn decisiontrail_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
