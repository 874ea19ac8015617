//! Packet index estimation (RFC 3711 §3.3.1, Appendix A) and replay
//! protection (§3.3.2).

use super::{SrtpError, REPLAY_WINDOW};

/// Estimates the 48-bit packet index of a packet with sequence number `seq`,
/// given the highest index seen so far (`2^16 * ROC + s_l`), as RFC 3711
/// Appendix A does: the ROC guess `v` is `ROC - 1`, `ROC` or `ROC + 1`,
/// whichever puts the index closest to the highest one.
///
/// `None` when the guess is `ROC - 1` while ROC is 0: the packet would come
/// from before the first one of the stream.
pub(super) fn estimate_index(highest: u64, seq: u16) -> Option<u64> {
    let roc = highest >> 16;
    let s_l = highest as u16;
    let v = if s_l < 0x8000 {
        if seq > s_l && seq - s_l > 0x8000 {
            roc.checked_sub(1)?
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq {
        roc + 1
    } else {
        roc
    };
    Some((v << 16) | u64::from(seq))
}

/// The replay list of RFC 3711 §3.3.2 as a sliding window: the highest index
/// received and a bitmap of the [`REPLAY_WINDOW`] indices at and below it
/// (bit `k` set: index `top - k` was received).
///
/// The bitmap is kept as two `u64` (low half first): a `u128` field would
/// align the window, and the per-SSRC state holding two of them, to 16
/// bytes, and every SRTP packet reads that state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ReplayWindow {
    top: u64,
    bits: [u64; 2],
}

const _: () = assert!(REPLAY_WINDOW == u128::BITS as u64);

impl ReplayWindow {
    /// A window whose only received index is `first`.
    pub(super) fn new(first: u64) -> Self {
        Self {
            top: first,
            bits: [1, 0],
        }
    }

    fn bits(&self) -> u128 {
        u128::from(self.bits[1]) << 64 | u128::from(self.bits[0])
    }

    fn set_bits(&mut self, bits: u128) {
        self.bits = [bits as u64, (bits >> 64) as u64];
    }

    /// The highest index received.
    pub(super) fn top(&self) -> u64 {
        self.top
    }

    /// Whether `index` may be accepted, before authentication.
    pub(super) fn check(&self, index: u64) -> Result<(), SrtpError> {
        if index > self.top {
            return Ok(());
        }
        let behind = self.top - index;
        if behind >= REPLAY_WINDOW {
            Err(SrtpError::TooOld)
        } else if self.bits() >> behind & 1 == 1 {
            Err(SrtpError::Replayed)
        } else {
            Ok(())
        }
    }

    /// Records `index` as received, after authentication; `check` passed.
    pub(super) fn accept(&mut self, index: u64) {
        if index > self.top {
            let ahead = index - self.top;
            let bits = if ahead >= REPLAY_WINDOW {
                0
            } else {
                self.bits() << ahead
            };
            self.set_bits(bits | 1);
            self.top = index;
        } else {
            let behind = self.top - index;
            if behind < REPLAY_WINDOW {
                self.set_bits(self.bits() | 1 << behind);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn estimate_follows_appendix_a() {
        // Same ROC, ahead and behind.
        assert_eq!(estimate_index(100, 101), Some(101));
        assert_eq!(estimate_index(100, 50), Some(50));
        // Wrap forward: s_l high, seq low.
        assert_eq!(estimate_index(0xffff, 0), Some(0x1_0000));
        assert_eq!(estimate_index(0x2_fff0, 5), Some(0x3_0005));
        // Late packet from the previous ROC: s_l low, seq high.
        assert_eq!(estimate_index(0x3_0005, 0xfff0), Some(0x2_fff0));
        // Before the start of the stream.
        assert_eq!(estimate_index(5, 0xfff0), None);
        // Exactly half way is not a wrap.
        assert_eq!(estimate_index(0, 0x8000), Some(0x8000));
        assert_eq!(estimate_index(0x8000, 0), Some(0));
    }

    #[test]
    fn window_rejects_replays_and_old() {
        let mut w = ReplayWindow::new(1000);
        assert_eq!(w.check(1000), Err(SrtpError::Replayed));
        assert_eq!(w.check(1001), Ok(()));
        assert_eq!(w.check(999), Ok(()));
        w.accept(999);
        assert_eq!(w.check(999), Err(SrtpError::Replayed));
        w.accept(1200);
        assert_eq!(w.top(), 1200);
        assert_eq!(w.check(1000), Err(SrtpError::TooOld));
        assert_eq!(w.check(1200 - 127), Ok(()));
        assert_eq!(w.check(1200 - 128), Err(SrtpError::TooOld));
        w.accept(1200 - 127);
        assert_eq!(w.check(1200 - 127), Err(SrtpError::Replayed));
        w.accept(1201);
        assert_eq!(w.check(1200 - 127), Err(SrtpError::TooOld));
        assert_eq!(w.check(1200), Err(SrtpError::Replayed));
        w.accept(100_000);
        assert_eq!(w.check(1201), Err(SrtpError::TooOld));
        assert_eq!(w.check(99_999), Ok(()));
    }
}
