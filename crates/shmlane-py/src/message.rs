//! [`Message`]: a message read in place by `ByteReceiver.read()`, lent to Python as a
//! read-only buffer over the shared bytes and released when its `with` block ends.

use super::*;

/// A message read in place by `ByteReceiver.read()`: a read-only buffer over the shared
/// bytes, valid inside its `with` block only. Leaving the block releases the message (and
/// the memoryview it gave); a view kept past that raises instead of reading reused memory.
#[pyclass(module = "shmlane", unsendable)]
pub(crate) struct Message {
    pub(crate) owner: Py<ByteReceiver>,
    /// The message's first byte (an address in the mapping) and length.
    pub(crate) ptr: usize,
    pub(crate) len: usize,
    /// Buffers exported and not yet released.
    pub(crate) exports: usize,
    /// The memoryview `__enter__` returned.
    pub(crate) view: Option<Py<PyAny>>,
    pub(crate) released: bool,
}

impl Message {
    /// Releases the message in the channel (once). Takes no borrow while it releases the
    /// memoryview, whose release calls back into `__releasebuffer__`.
    fn finish(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let view = {
            let mut me = slf.borrow_mut();
            if me.released {
                return Ok(());
            }
            me.view.take()
        };
        if let Some(v) = view {
            v.bind(py).call_method0("release")?;
        }
        let mut me = slf.borrow_mut();
        if me.exports > 0 {
            return Err(PyBufferError::new_err(format!(
                "{} view(s) of the message are still in use (a slice of the memoryview, or \
                 a numpy array over it); copy what you need inside the `with` block, then \
                 release() the message",
                me.exports
            )));
        }
        me.released = true;
        let mut owner = me.owner.bind(py).borrow_mut();
        owner.held = false;
        let released = owner.rx.release_held();
        if std::mem::take(&mut owner.leave_after_release) {
            owner.rx.leave();
        }
        released.map_err(|e| py_err(&e))
    }
}

#[pymethods]
impl Message {
    /// Length of the message in bytes.
    fn __len__(&self) -> usize {
        self.len
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if slf.borrow().released {
            return Err(PyBufferError::new_err("the message was already released"));
        }
        // No borrow is held here: making the view calls __getbuffer__.
        let view = py
            .import("builtins")?
            .getattr("memoryview")?
            .call1((slf.clone(),))?
            .unbind();
        slf.borrow_mut().view = Some(view.clone_ref(py));
        Ok(view)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(slf: &Bound<'_, Self>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        Message::finish(slf)?;
        Ok(false)
    }

    /// Releases the message now (what leaving the `with` block does). Raises `BufferError`
    /// while a view of it is still in use, and keeps it held.
    fn release(slf: &Bound<'_, Self>) -> PyResult<()> {
        Message::finish(slf)
    }

    /// A copy of the message as `bytes`.
    fn tobytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        if self.released {
            return Err(PyBufferError::new_err("the message was already released"));
        }
        let mut owner = self.owner.bind(py).borrow_mut();
        PyBytes::new_with(py, self.len, |b| {
            owner.rx.copy_held(b).map_err(|e| py_err(&e))
        })
    }

    unsafe fn __getbuffer__(
        mut slf: PyRefMut<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if slf.released {
            return Err(PyBufferError::new_err(
                "the message was released when its `with` block ended; read it inside the block",
            ));
        }
        let (ptr, len) = (slf.ptr, slf.len);
        // SAFETY: `view` is the exporter's Py_buffer to fill (CPython's contract); the bytes
        // stay valid while the message is held, which `exports` keeps it until released.
        // Read-only (1): a consumer never writes the producer's record.
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                ptr as *mut std::ffi::c_void,
                len as ffi::Py_ssize_t,
                1,
                flags,
            )
        };
        if rc != 0 {
            return Err(PyErr::fetch(slf.py()));
        }
        slf.exports += 1;
        Ok(())
    }

    unsafe fn __releasebuffer__(mut slf: PyRefMut<'_, Self>, _view: *mut ffi::Py_buffer) {
        slf.exports = slf.exports.saturating_sub(1);
    }

    fn __repr__(&self) -> String {
        format!(
            "shmlane.Message(len={}, {})",
            self.len,
            if self.released { "released" } else { "held" }
        )
    }
}
