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
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};

use crate::error::{Error, ErrorKind, Result};
use crate::pixmap::Pixmap;
use crate::sync::fork::{self, AtFork, Taken};
use crate::sync::lock::{self, BrLock, WriteGuard};
use crate::sync::once::Published;
use crate::sync::token;

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
///
/// A [`Table`], so that a `fork(2)` never leaves it locked in the child (`fork.rs`).
/// Made on first use without a `LazyLock` (`sync/once.rs`: a fork must never copy it half made).
fn waiting() -> &'static Table<u64> {
    static WAITING: Published<Arc<Table<u64>>> = Published::new();
    WAITING.get_or(|| {
        // The forking thread waits for no flight: in a child, every edge is a lost thread's.
        let table = Arc::new(Table::new(Keep::Nothing));
        let weak: Weak<dyn AtFork> = Arc::downgrade(&(Arc::clone(&table) as Arc<dyn AtFork>));
        fork::register(weak);
        table
    })
}

/// A table of flights, by `K`, behind the parking lock (`lock.rs`, used as a plain mutex): its
/// waits sleep, and its fork handlers leave the child a table it can lock, holding only the
/// flights of the one thread that survived.
pub(crate) struct Table<K>(BrLock<HashMap<K, Arc<Flight>>, ()>, Keep);

/// What a [`Table`] keeps in a forked child.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// The flights the forking thread produces (a cache's flights in progress).
    OwnFlights,
    /// Nothing (the wait-for edges: the forking thread is in `fork`, waiting for nothing).
    Nothing,
}

impl<K> Default for Table<K> {
    fn default() -> Self {
        Table::new(Keep::OwnFlights)
    }
}

impl<K> Table<K> {
    fn new(keep: Keep) -> Self {
        Table(BrLock::new(HashMap::new(), || ()), keep)
    }

    fn lock(&self) -> WriteGuard<'_, HashMap<K, Arc<Flight>>, ()> {
        self.0.write(lock::me())
    }
}

impl<K: Send + Sync> AtFork for Table<K> {
    fn before_fork(&self) -> Taken {
        self.0.before_fork()
    }

    fn after_fork_in_parent(&self) {
        self.0.after_fork_in_parent();
    }

    /// Only the forking thread is left: a flight another thread was producing will never
    /// finish, and an edge of a thread that was waiting names a wait that no longer exists
    /// (and a new thread of the child may reuse that thread's token). Both go (a later call for
    /// that key starts a new flight); the forking thread's own flights stay, for it to finish.
    fn after_fork_in_child(&self) {
        self.0.after_fork_in_child();
        let me = token::current();
        let keep = self.1;
        self.lock()
            .retain(|_, flight| keep == Keep::OwnFlights && flight.producer == me);
    }
}

/// Takes the caller's edge out of [`waiting`] when its wait ends, however it ends.
struct Edge(u64);

impl Drop for Edge {
    fn drop(&mut self) {
        waiting().lock().remove(&self.0);
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
            let mut waiting = waiting().lock();
            // Finished already: nothing to wait for, so nothing that could close a cycle (its
            // producer may be waiting on something else by now).
            if self.done.load(Ordering::Acquire) {
                drop(waiting);
                // `done` is set after the result, under its lock: it is there.
                return lock(&self.result).clone().unwrap_or_else(|| {
                    Err(Error::new(
                        ErrorKind::Panic,
                        "a finished flight had no result",
                    ))
                });
            }
            // Follow the producers' own waits. A flight that is done is a wait about to end
            // (its waiter is awake or being woken), not an edge. The walk is bounded by the
            // number of edges, and the graph has no cycle (see `waiting`).
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
    pending: Table<Box<str>>,
}

/// What [`Flights::join`] decided for the caller.
pub(crate) enum Role<'a> {
    /// Another thread is producing: wait for it.
    Wait(Arc<Flight>),
    /// This thread produces: run the producer, then [`Lead::finish`].
    Lead(Lead<'a>),
}

impl AtFork for Flights {
    fn before_fork(&self) -> Taken {
        self.pending.before_fork()
    }

    fn after_fork_in_parent(&self) {
        self.pending.after_fork_in_parent();
    }

    fn after_fork_in_child(&self) {
        self.pending.after_fork_in_child();
    }
}

impl Flights {
    /// Joins the flight for `key`, or starts one. `still_missing` is re-checked under the table's
    /// lock before starting (a producer may have finished since the caller's miss); when it finds
    /// the key, `None` is returned.
    pub(crate) fn join(&self, key: &str, still_missing: impl FnOnce() -> bool) -> Option<Role<'_>> {
        let mut pending = self.pending.lock();
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
        self.pending.lock().remove(key);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::thread;

    /// Whether some thread is waiting on `flight` (its edge is in [`waiting`]).
    fn awaited(flight: &Arc<Flight>) -> bool {
        waiting().lock().values().any(|f| Arc::ptr_eq(f, flight))
    }

    fn flight_of(flights: &Flights, key: &str) -> Arc<Flight> {
        Arc::clone(
            flights
                .pending
                .lock()
                .get(key)
                .expect("a flight in progress"),
        )
    }

    fn spin_until(done: impl Fn() -> bool) {
        while !done() {
            thread::yield_now();
        }
    }

    /// M, producing "m", joins P's flight and is delayed before it waits. Meanwhile P finishes
    /// that flight and goes on to wait for Q, which waits for M. M's wait must return P's
    /// result, not report a cycle: P's flight is done, so M waits for nothing. (Found by review:
    /// the walk checked every flight on the chain for `done` except the first.)
    #[test]
    fn a_finished_flight_closes_no_cycle() {
        let flights: &'static Flights = Box::leak(Box::default());
        let (p_led, p_led_rx) = channel();
        let (p_go, p_go_rx) = channel::<()>();
        let (m_joined, m_joined_rx) = channel();
        let (m_go, m_go_rx) = channel::<()>();
        let (q_ready, q_ready_rx) = channel();
        // P leads "p"; when told, finishes it and then waits for Q's flight.
        let p = thread::spawn(move || {
            let Some(Role::Lead(lead_p)) = flights.join("p", || true) else {
                panic!("p is new")
            };
            p_led.send(()).unwrap();
            p_go_rx.recv().unwrap();
            lead_p.finish(Ok(Pixmap::null()));
            let Some(Role::Wait(fq)) = flights.join("q", || true) else {
                panic!("q is in flight")
            };
            fq.wait()
        });
        p_led_rx.recv().unwrap();
        // M leads "m", joins P's flight, and is held before it waits.
        let m = thread::spawn(move || {
            let Some(Role::Lead(lead_m)) = flights.join("m", || true) else {
                panic!("m is new")
            };
            let Some(Role::Wait(fp)) = flights.join("p", || true) else {
                panic!("p is in flight")
            };
            m_joined.send(()).unwrap();
            m_go_rx.recv().unwrap();
            let r = fp.wait();
            lead_m.finish(Ok(Pixmap::null()));
            r
        });
        m_joined_rx.recv().unwrap();
        // Q leads "q" and waits for M.
        let q = thread::spawn(move || {
            let Some(Role::Lead(lead_q)) = flights.join("q", || true) else {
                panic!("q is new")
            };
            let Some(Role::Wait(fm)) = flights.join("m", || true) else {
                panic!("m is in flight")
            };
            q_ready.send(()).unwrap();
            let r = fm.wait();
            lead_q.finish(Ok(Pixmap::null()));
            r
        });
        q_ready_rx.recv().unwrap();
        let (fm, fq) = (flight_of(flights, "m"), flight_of(flights, "q"));
        spin_until(|| awaited(&fm)); // Q waits for M
        p_go.send(()).unwrap();
        spin_until(|| awaited(&fq)); // P's flight is done, and P waits for Q
        m_go.send(()).unwrap();
        let r = m.join().unwrap();
        assert!(r.is_ok(), "M waited on a finished flight and got {r:?}");
        assert!(q.join().unwrap().is_ok());
        assert!(p.join().unwrap().is_ok());
    }
}
