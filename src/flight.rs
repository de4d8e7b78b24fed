//! Single flight: while one thread produces the pixmap for a missing key (decodes a file,
//! renders an icon), other threads asking for the same key wait for that result instead of
//! producing it again; threads asking for other keys are never blocked by it.
//!
//! A flight is registered under its key in a table separate from the cache's lock, so a
//! producer runs outside every lock. When the producer finishes, the flight records the result
//! (the pixmap, or the producer's error, which every waiter then gets too), wakes the waiters and
//! leaves the table. If the producer panics, a guard completes the flight with an error, so no
//! waiter ever hangs.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::ThreadId;

use crate::error::{Error, ErrorKind, Result};
use crate::pixmap::Pixmap;

/// One production in progress.
pub(crate) struct Flight {
    producer: ThreadId,
    result: Mutex<Option<Result<Pixmap>>>,
    done: Condvar,
}

impl Flight {
    /// Waits for the producer and returns its result (a share of the pixmap, or its error).
    pub(crate) fn wait(&self) -> Result<Pixmap> {
        if self.producer == std::thread::current().id() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a producer asked for the key it is producing (re-entrant find-or-insert of the same key)",
            ));
        }
        let mut result = lock(&self.result);
        loop {
            if let Some(r) = result.as_ref() {
                return r.clone();
            }
            result = self
                .done
                .wait(result)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here can be left half-updated by a panic: recover the guard.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The flights in progress of one cache, by key.
#[derive(Default)]
pub(crate) struct Flights {
    pending: Mutex<HashMap<Box<str>, Arc<Flight>>>,
}

/// What [`Flights::join`] decided for the caller.
pub(crate) enum Role<'a> {
    /// Another thread is producing: wait for it.
    Wait(Arc<Flight>),
    /// This thread produces: run the producer, then [`Lead::finish`].
    Lead(Lead<'a>),
}

impl Flights {
    /// Joins the flight for `key`, or starts one. `still_missing` is re-checked under the table's
    /// lock before starting (a producer may have finished since the caller's miss); when it finds
    /// the key, `None` is returned.
    pub(crate) fn join(&self, key: &str, still_missing: impl FnOnce() -> bool) -> Option<Role<'_>> {
        let mut pending = lock(&self.pending);
        if let Some(flight) = pending.get(key) {
            return Some(Role::Wait(Arc::clone(flight)));
        }
        if !still_missing() {
            return None;
        }
        let flight = Arc::new(Flight {
            producer: std::thread::current().id(),
            result: Mutex::new(None),
            done: Condvar::new(),
        });
        pending.insert(key.into(), Arc::clone(&flight));
        Some(Role::Lead(Lead {
            flights: self,
            key: key.into(),
            flight,
            finished: false,
        }))
    }

    fn complete(&self, key: &str, flight: &Flight, result: Result<Pixmap>) {
        *lock(&flight.result) = Some(result);
        flight.done.notify_all();
        lock(&self.pending).remove(key);
    }
}

/// The producing thread's handle on its flight. Finishing it (or dropping it, e.g. during a
/// panic) publishes the result and removes the flight.
pub(crate) struct Lead<'a> {
    flights: &'a Flights,
    key: Box<str>,
    flight: Arc<Flight>,
    finished: bool,
}

impl Lead<'_> {
    /// Publishes the producer's result to every waiter.
    pub(crate) fn finish(mut self, result: Result<Pixmap>) {
        self.finished = true;
        self.flights.complete(&self.key, &self.flight, result);
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let error = Error::new(ErrorKind::Panic, "the producer panicked");
            self.flights.complete(&self.key, &self.flight, Err(error));
        }
    }
}
