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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};

use crate::error::{Error, ErrorKind, Result};
use crate::pixmap::Pixmap;
use crate::token;

/// One production in progress.
pub(crate) struct Flight {
    /// The producing thread's token (`token.rs`).
    producer: u64,
    /// Set (before the waiters are woken) once `result` is in: the producer no longer blocks
    /// anyone through this flight.
    done: AtomicBool,
    result: Mutex<Option<Result<Pixmap>>>,
    woken: Condvar,
}

/// Which producer each waiting thread waits for, in every cache (by thread token): the edges of
/// the wait-for graph. A thread adds its edge only after checking, under this lock, that the
/// producer it is about to wait for does not wait (directly or through other producers) for
/// it; so no cycle of waits can form, and whichever thread would close one gets an error.
static WAITING: LazyLock<Mutex<HashMap<u64, Arc<Flight>>>> = LazyLock::new(Default::default);

/// Takes the caller's edge out of [`WAITING`] when its wait ends, however it ends.
struct Edge(u64);

impl Drop for Edge {
    fn drop(&mut self) {
        lock(&WAITING).remove(&self.0);
    }
}

impl Flight {
    /// Waits for the producer and returns its result (a share of the pixmap, or its error). A
    /// wait that would never end gets an error instead: a producer asking for the key it is
    /// producing, or for a key whose producer waits (perhaps through other producers, in any
    /// cache) for one this thread is producing.
    pub(crate) fn wait(self: &Arc<Self>) -> Result<Pixmap> {
        let me = token::current();
        if self.producer == me {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a producer asked for the key it is producing (re-entrant find-or-insert of the same key)",
            ));
        }
        let _edge = {
            let mut waiting = lock(&WAITING);
            // Follow the producers' own waits. A flight that is done is a wait about to end
            // (its waiter is awake or being woken), not an edge. The walk is bounded by the
            // number of edges, and the graph has no cycle (see `WAITING`).
            let mut next = self.producer;
            for _ in 0..=waiting.len() {
                let Some(flight) = waiting.get(&next) else {
                    break;
                };
                if flight.done.load(Ordering::Acquire) {
                    break;
                }
                if flight.producer == me {
                    return Err(Error::new(
                        ErrorKind::InvalidArgument,
                        "producers asked for each other's keys (find-or-insert producers waiting in a cycle)",
                    ));
                }
                next = flight.producer;
            }
            waiting.insert(me, Arc::clone(self));
            Edge(me)
        };
        let mut result = lock(&self.result);
        loop {
            if let Some(r) = result.as_ref() {
                return r.clone();
            }
            result = self
                .woken
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
            producer: token::current(),
            done: AtomicBool::new(false),
            result: Mutex::new(None),
            woken: Condvar::new(),
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
        flight.done.store(true, Ordering::Release);
        flight.woken.notify_all();
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
