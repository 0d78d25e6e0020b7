//! The simulation's clock: a queue of events, each a time and a target, run in time order and,
//! at the same millisecond, in the order they were scheduled (the kubelet and the controllers
//! react to each other within a millisecond, and that order must not depend on a heap's
//! whims). An event can be cancelled: a probe result or an exit of a container run that has
//! already ended is taken out explicitly rather than ignored when it comes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

/// Milliseconds since the manifests were applied.
pub type Ms = u64;

/// An event's identity, to cancel it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(u64);

/// What a part of the simulation asks of the clock.
pub trait Clock<T> {
    /// `target` is to run at `at`.
    fn schedule(&mut self, at: Ms, target: T) -> EventId;
    /// The event will not run.
    fn cancel(&mut self, id: EventId);
}

/// Events in time order.
pub struct Queue<T> {
    heap: BinaryHeap<Reverse<(Ms, EventId)>>,
    targets: Vec<Option<T>>,
    cancelled: HashSet<EventId>,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            targets: Vec::new(),
            cancelled: HashSet::new(),
        }
    }
}

impl<T> Queue<T> {
    /// The next event that was not cancelled, and its time.
    pub fn pop(&mut self) -> Option<(Ms, T)> {
        self.pop_until(Ms::MAX)
    }

    /// The next event that was not cancelled, when it is due by `until`; a later one stays.
    pub fn pop_until(&mut self, until: Ms) -> Option<(Ms, T)> {
        while let Some(&Reverse((at, id))) = self.heap.peek() {
            if self.cancelled.remove(&id) {
                self.heap.pop();
                self.targets[id.0 as usize] = None;
                continue;
            }
            if at > until {
                return None;
            }
            self.heap.pop();
            if let Some(target) = self.targets[id.0 as usize].take() {
                return Some((at, target));
            }
        }
        None
    }

    /// Events scheduled and neither run nor cancelled.
    pub fn pending(&self) -> usize {
        self.heap.len() - self.cancelled.len()
    }
}

impl<T> Clock<T> for Queue<T> {
    fn schedule(&mut self, at: Ms, target: T) -> EventId {
        let id = EventId(self.targets.len() as u64);
        self.targets.push(Some(target));
        self.heap.push(Reverse((at, id)));
        id
    }

    fn cancel(&mut self, id: EventId) {
        if self.targets.get(id.0 as usize).is_some_and(Option::is_some) {
            self.cancelled.insert(id);
        }
    }
}

/// A clock for one part of a larger target: what it schedules is wrapped by `wrap`.
pub struct Scoped<'q, T, U, F: Fn(U) -> T> {
    queue: &'q mut Queue<T>,
    wrap: F,
    target: std::marker::PhantomData<U>,
}

impl<'q, T, U, F: Fn(U) -> T> Scoped<'q, T, U, F> {
    pub fn new(queue: &'q mut Queue<T>, wrap: F) -> Self {
        Scoped {
            queue,
            wrap,
            target: std::marker::PhantomData,
        }
    }
}

impl<T, U, F: Fn(U) -> T> Clock<U> for Scoped<'_, T, U, F> {
    fn schedule(&mut self, at: Ms, target: U) -> EventId {
        self.queue.schedule(at, (self.wrap)(target))
    }

    fn cancel(&mut self, id: EventId) {
        self.queue.cancel(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_run_in_time_order_then_in_the_order_they_were_scheduled() {
        let mut queue = Queue::default();
        queue.schedule(20, "c");
        queue.schedule(10, "a");
        queue.schedule(10, "b");
        queue.schedule(0, "first");
        let order: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(order, [(0, "first"), (10, "a"), (10, "b"), (20, "c")]);
    }

    #[test]
    fn a_cancelled_event_never_runs_and_cancelling_twice_or_late_is_harmless() {
        let mut queue = Queue::default();
        let a = queue.schedule(5, 'a');
        let b = queue.schedule(6, 'b');
        queue.cancel(a);
        queue.cancel(a);
        assert_eq!(queue.pending(), 1);
        assert_eq!(queue.pop(), Some((6, 'b')));
        queue.cancel(b);
        assert_eq!(queue.pending(), 0);
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn an_event_after_the_limit_stays_for_later() {
        let mut queue = Queue::default();
        queue.schedule(5, 'a');
        assert_eq!(queue.pop_until(4), None);
        assert_eq!(queue.pending(), 1);
        assert_eq!(queue.pop_until(5), Some((5, 'a')));
    }
}
