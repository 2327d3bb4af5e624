//! Panic isolation for kruise-manager: a panic while handling one object (an admission review, a
//! reconcile) is caught where that object's handling starts and becomes an error for that object
//! only, instead of taking the whole process down. The controllers use it too (they depend on this
//! crate). It owns the process's panic hook; it does not decide what a caught panic means — the
//! admission server answers an internal error, a controller requeues.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

thread_local! {
    /// Whether the code running on this thread is inside [`guarded`].
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// The last guarded panic on this thread, with its location, left by the hook.
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A caught panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Panic {
    /// The panic message, with its source location when the hook of [`install_hook`] is in place
    /// (`index out of bounds: ... at webhook/src/x.rs:10:5`).
    pub message: String,
}

impl std::fmt::Display for Panic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Installs the process's panic hook (once): a panic inside [`guarded`] is not printed — the guard's
/// caller logs it once, with the object it was handling — but its message and location are kept for
/// that log line. Any other panic goes to the previous hook (Rust's default message on stderr).
pub fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let message = payload_text(info.payload());
                let text = match info.location() {
                    Some(l) => format!("{message} (at {}:{}:{})", l.file(), l.line(), l.column()),
                    None => message,
                };
                LAST.with(|l| *l.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs `f`, turning a panic into `Err`. Whatever `f` touched is not used again by the caller once
/// it panicked (the object's handling ends there), hence the `AssertUnwindSafe`.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Panic> {
    let outer = GUARDED.with(|g| g.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(outer));
    result.map_err(|payload| Panic {
        message: LAST
            .with(|l| l.borrow_mut().take())
            .unwrap_or_else(|| payload_text(payload.as_ref())),
    })
}

/// A future whose panics (in any of its polls) end it with `Err` instead of unwinding into the
/// executor: the reconcile of one object fails, the controller's other objects carry on.
pub struct CatchPanic<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> CatchPanic<F> {
    /// Wraps `fut`.
    pub fn new(fut: F) -> Self {
        Self {
            inner: Box::pin(fut),
        }
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, Panic>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.get_mut().inner.as_mut();
        match guarded(|| inner.poll(cx)) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(p) => Poll::Ready(Err(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message_and_location() {
        install_hook();
        let v: Vec<u32> = Vec::new();
        let idx = v.len() + 3;
        let err = guarded(|| v[idx]).unwrap_err();
        assert!(
            err.message.contains("index out of bounds"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("webhook/src/panics.rs:"),
            "{}",
            err.message
        );
        assert_eq!(guarded(|| 7), Ok(7));
        // nested guards restore the outer state
        let r = guarded(|| guarded(|| panic!("inner")).is_err());
        assert_eq!(r, Ok(true));
    }

    #[tokio::test]
    async fn a_panicking_future_ends_with_err_and_the_next_one_runs() {
        install_hook();
        let object = "ns/x";
        let bad = CatchPanic::new(async move {
            tokio::task::yield_now().await;
            if !object.is_empty() {
                panic!("reconcile of {object} exploded");
            }
            5u8
        });
        let err = bad.await.unwrap_err();
        assert!(err.message.contains("reconcile of ns/x exploded"));
        assert_eq!(CatchPanic::new(async { 1 + 1 }).await, Ok(2));
    }
}
