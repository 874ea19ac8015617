//! Fixed-capacity ring buffer of frames, allocated once.

use crate::{Frame, FRAME_SAMPLES};

/// A FIFO of at most `capacity` frames that never reallocates.
pub(crate) struct FrameQueue {
    slots: Box<[Frame]>,
    /// Index of the oldest queued frame.
    head: usize,
    /// Number of queued frames, `<= slots.len()`.
    len: usize,
}

impl FrameQueue {
    /// A queue of `capacity` slots (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            slots: vec![[0; FRAME_SAMPLES]; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    /// Appends a copy of `frame`. Returns `true` if the queue was full and its
    /// oldest frame was dropped to make room.
    ///
    /// An empty queue starts again at its first slot, so a queue that is
    /// pushed once and popped once per tick keeps using the same slot (which
    /// stays in the cache) instead of cycling through all of them.
    pub(crate) fn push(&mut self, frame: &Frame) -> bool {
        let cap = self.slots.len();
        if self.len == 0 {
            self.head = 0;
        }
        let dropped = self.len == cap;
        if dropped {
            self.head = (self.head + 1) % cap;
            self.len -= 1;
        }
        let tail = (self.head + self.len) % cap;
        self.slots[tail] = *frame;
        self.len += 1;
        dropped
    }

    /// Removes the oldest frame and returns its slot index, valid for
    /// [`FrameQueue::slot`] until the next [`FrameQueue::push`].
    pub(crate) fn pop(&mut self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let slot = self.head;
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        Some(slot)
    }

    /// The frame stored in `slot` (an index returned by [`FrameQueue::pop`]).
    pub(crate) fn slot(&self, slot: usize) -> &Frame {
        &self.slots[slot]
    }

    /// Number of queued frames.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn frame(v: i16) -> Frame {
        [v; FRAME_SAMPLES]
    }

    #[test]
    fn fifo_order_and_wrap() {
        let mut q = FrameQueue::new(3);
        // One frame always left queued, so the queue goes round its slots.
        assert!(!q.push(&frame(-1)));
        let mut slots = Vec::new();
        for round in 0..5i16 {
            assert!(!q.push(&frame(round * 10)));
            assert!(!q.push(&frame(round * 10 + 1)));
            assert_eq!(q.len(), 3);
            let a = q.pop().unwrap();
            assert_eq!(q.slot(a)[0], if round == 0 { -1 } else { round * 10 - 9 });
            let b = q.pop().unwrap();
            assert_eq!(q.slot(b)[0], round * 10);
            slots.extend([a, b]);
        }
        assert_eq!(slots, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
        let c = q.pop().unwrap();
        assert_eq!(q.slot(c)[0], 41);
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn an_emptied_queue_starts_again_at_its_first_slot() {
        let mut q = FrameQueue::new(10);
        for round in 0..20i16 {
            assert!(!q.push(&frame(round)));
            let s = q.pop().unwrap();
            assert_eq!((s, q.slot(s)[0]), (0, round));
            assert_eq!(q.pop(), None);
        }
        // Not while something is queued.
        q.push(&frame(1));
        q.push(&frame(2));
        assert_eq!(q.pop(), Some(0));
        q.push(&frame(3));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.slot(2)[0], 3);
    }

    #[test]
    fn full_queue_drops_oldest() {
        let mut q = FrameQueue::new(2);
        assert!(!q.push(&frame(1)));
        assert!(!q.push(&frame(2)));
        assert!(q.push(&frame(3)));
        assert!(q.push(&frame(4)));
        assert_eq!(q.len(), 2);
        let s = q.pop().unwrap();
        assert_eq!(q.slot(s)[0], 3);
        let s = q.pop().unwrap();
        assert_eq!(q.slot(s)[0], 4);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn zero_capacity_means_one() {
        let mut q = FrameQueue::new(0);
        assert!(!q.push(&frame(1)));
        assert!(q.push(&frame(2)));
        let s = q.pop().unwrap();
        assert_eq!(q.slot(s)[0], 2);
    }
}
