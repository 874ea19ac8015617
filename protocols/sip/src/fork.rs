//! Parallel forking of one call to several targets (the registered contacts of one account), with the
//! response context of RFC 3261 §16.7 and §16.8 as a pure state machine.
//!
//! confgate is a back-to-back user agent: each branch is its own INVITE (its own Call-ID and dialog),
//! but which branch wins and what the caller is told follow the proxy rules:
//!
//! - The first 2xx wins ([`ForkOutput::Answered`]); every other branch still ringing is cancelled
//!   (§16.7 step 10). A 2xx that arrives from another branch afterwards is released
//!   ([`ForkOutput::Release`]: acknowledge it and send BYE, as §16.7 leaves a second 2xx to the UAC).
//! - A 6xx ends the search (§16.7 step 5 and step 9): the other branches are cancelled and the caller
//!   gets the 6xx at once.
//! - When every branch has a final response and none is 2xx, the caller gets the best one
//!   ([`best_response`], §16.7 step 6).
//! - The first 180 or 183 is relayed to the caller once ([`ForkOutput::Provisional`]); 100 never is
//!   (§16.7 step 5: it is hop by hop).
//! - A CANCEL goes only to a branch that has had a provisional response (RFC 3261 §9.1); a branch
//!   asked to stop before that is cancelled when its first provisional arrives.
//! - Giving up ([`ForkContext::give_up`]: the caller cancelled, or nobody answered in time) cancels
//!   every branch still open; a branch that never answered counts as the given status (408 when
//!   nobody answered, §16.8 Timer C).
//!
//! Drain contract: after every call, take [`ForkContext::poll_output`] until `None`.

use std::collections::VecDeque;

/// What the driver does next for the fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkOutput {
    /// Relay this provisional status (180 or 183) to the caller; given once per call.
    Provisional(u16),
    /// Send CANCEL on this branch (RFC 3261 §9.1).
    Cancel(usize),
    /// This branch answered first: connect the caller to it.
    Answered(usize),
    /// This branch answered after the search ended: acknowledge its 2xx and end it with BYE.
    Release(usize),
    /// Nobody answered: answer the caller with this final status (already chosen by §16.7 rules).
    Final(u16),
}

/// Whether a branch was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancel {
    /// Not asked.
    No,
    /// Asked before any provisional response: CANCEL when one arrives (RFC 3261 §9.1).
    Pending,
    /// CANCEL sent.
    Sent,
}

#[derive(Debug, Clone, Copy)]
struct Branch {
    /// A provisional response came.
    provisional: bool,
    /// The branch's own final response came (its transaction is over).
    final_received: bool,
    /// Its status is in the response context (received, or stood in for).
    counted: bool,
    cancel: Cancel,
}

/// The response context of one forked INVITE: see the module docs.
#[derive(Debug)]
pub struct ForkContext {
    branches: Vec<Branch>,
    /// Final statuses in the context, in order of arrival.
    finals: Vec<u16>,
    provisional_relayed: bool,
    /// A branch answered, a 6xx ended the search, the driver gave up, or every branch failed.
    over: bool,
    outputs: VecDeque<ForkOutput>,
}

impl ForkContext {
    /// A context for `branches` INVITEs, all sent.
    pub fn new(branches: usize) -> Self {
        Self {
            branches: vec![
                Branch {
                    provisional: false,
                    final_received: false,
                    counted: false,
                    cancel: Cancel::No,
                };
                branches
            ],
            finals: Vec::new(),
            provisional_relayed: false,
            over: false,
            outputs: VecDeque::new(),
        }
    }

    /// Number of branches.
    pub fn len(&self) -> usize {
        self.branches.len()
    }

    /// Whether there are no branches at all.
    pub fn is_empty(&self) -> bool {
        self.branches.is_empty()
    }

    /// Whether the search is over (answered, ended by a 6xx, given up, or every branch failed).
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// Whether `branch` still waits for its own final response.
    pub fn is_open(&self, branch: usize) -> bool {
        self.branches.get(branch).is_some_and(|b| !b.final_received)
    }

    /// A provisional response `code` (100–199) on `branch`.
    pub fn provisional(&mut self, branch: usize, code: u16) {
        let Some(b) = self.branches.get_mut(branch) else { return };
        if b.final_received {
            return;
        }
        b.provisional = true;
        if b.cancel == Cancel::Pending {
            b.cancel = Cancel::Sent;
            self.outputs.push_back(ForkOutput::Cancel(branch));
        }
        if !self.over && !self.provisional_relayed && (180..=183).contains(&code) {
            self.provisional_relayed = true;
            self.outputs
                .push_back(ForkOutput::Provisional(if code == 183 { 183 } else { 180 }));
        }
    }

    /// The final response `code` (200–699) on `branch`. A second final on a branch (the transaction
    /// layer absorbs retransmissions) is ignored.
    pub fn final_response(&mut self, branch: usize, code: u16) {
        let Some(b) = self.branches.get_mut(branch) else { return };
        if b.final_received {
            return;
        }
        b.final_received = true;
        let success = (200..300).contains(&code);
        let counted = b.counted;
        b.counted = true;
        if self.over || counted {
            // Too late: the search ended (or this branch was given up on).
            if success {
                self.outputs.push_back(ForkOutput::Release(branch));
            }
            return;
        }
        if success {
            self.over = true;
            self.outputs.push_back(ForkOutput::Answered(branch));
            self.cancel_open();
            return;
        }
        self.finals.push(code);
        if code >= 600 {
            // §16.7 step 9: a 6xx ends the search; the caller learns it at once.
            self.over = true;
            self.cancel_open();
            self.outputs.push_back(ForkOutput::Final(code));
            return;
        }
        if self.branches.iter().all(|b| b.counted) {
            self.over = true;
            self.outputs.push_back(ForkOutput::Final(best_response(&self.finals)));
        }
    }

    /// `branch`'s INVITE transaction timed out with no final response: a 408 in the context (RFC 3261
    /// §16.7 step 6).
    pub fn timed_out(&mut self, branch: usize) {
        self.final_response(branch, 408);
    }

    /// Ends the search: cancels every open branch, and counts those that gave no final response as
    /// `no_answer` (408 when the ring time ran out). Gives [`ForkOutput::Final`] with the best response
    /// unless the search was already over (the driver answers a caller's CANCEL itself, with 487).
    pub fn give_up(&mut self, no_answer: u16) {
        if self.over {
            return;
        }
        self.over = true;
        self.cancel_open();
        for b in &mut self.branches {
            if !b.counted {
                b.counted = true;
                self.finals.push(no_answer);
            }
        }
        self.outputs.push_back(ForkOutput::Final(best_response(&self.finals)));
    }

    fn cancel_open(&mut self) {
        for (i, b) in self.branches.iter_mut().enumerate() {
            if b.final_received || b.cancel != Cancel::No {
                continue;
            }
            if b.provisional {
                b.cancel = Cancel::Sent;
                self.outputs.push_back(ForkOutput::Cancel(i));
            } else {
                b.cancel = Cancel::Pending;
            }
        }
    }

    /// The next thing to do, until `None`.
    pub fn poll_output(&mut self) -> Option<ForkOutput> {
        self.outputs.pop_front()
    }
}

/// The response a forking server gives its caller when no branch answered (RFC 3261 §16.7 step 6):
/// a 6xx if any; else one from the lowest class among 3xx, 4xx and 5xx; within a class, a response that
/// says something about the callee (486 Busy Here, 404, 488, 401/407/415/420/484, …) before 480
/// (Temporarily Unavailable), 408 (no answer) and 487 (cancelled); the first received among equals. A
/// chosen 503 becomes 500 (§16.7 step 6: a 503 is not forwarded). Nothing received: 408.
pub fn best_response(finals: &[u16]) -> u16 {
    fn weight(code: u16) -> u8 {
        match code {
            487 => 3,
            408 => 2,
            480 => 1,
            _ => 0,
        }
    }
    let finals: Vec<u16> = finals.iter().copied().filter(|c| (300..700).contains(c)).collect();
    if let Some(six) = finals.iter().find(|c| **c >= 600) {
        return *six;
    }
    let Some(class) = finals.iter().map(|c| c / 100).min() else {
        return 408;
    };
    let best = finals
        .iter()
        .copied()
        .filter(|c| c / 100 == class)
        .min_by_key(|c| weight(*c))
        .unwrap_or(408);
    if best == 503 {
        500
    } else {
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(f: &mut ForkContext) -> Vec<ForkOutput> {
        std::iter::from_fn(|| f.poll_output()).collect()
    }

    #[test]
    fn first_2xx_wins_and_the_others_are_cancelled() {
        let mut f = ForkContext::new(3);
        f.provisional(0, 100);
        assert!(drain(&mut f).is_empty(), "100 is not relayed");
        f.provisional(0, 180);
        f.provisional(1, 180);
        assert_eq!(drain(&mut f), [ForkOutput::Provisional(180)], "ringing relayed once");
        f.final_response(1, 200);
        // Branch 0 rang: CANCEL now. Branch 2 never answered: CANCEL waits for its provisional.
        assert_eq!(drain(&mut f), [ForkOutput::Answered(1), ForkOutput::Cancel(0)]);
        assert!(f.is_over());
        f.provisional(2, 100);
        assert_eq!(drain(&mut f), [ForkOutput::Cancel(2)]);
        f.provisional(2, 180);
        assert!(drain(&mut f).is_empty(), "no second ringing, no second CANCEL");
        // The cancelled branch's 487 is absorbed; a late 2xx on branch 0 is released.
        f.final_response(2, 487);
        f.final_response(0, 200);
        assert_eq!(drain(&mut f), [ForkOutput::Release(0)]);
        assert!(!f.is_open(0) && !f.is_open(2));
    }

    #[test]
    fn all_busy_gives_486_and_no_answer_gives_408() {
        let mut f = ForkContext::new(2);
        f.final_response(0, 486);
        assert!(drain(&mut f).is_empty(), "waits for the other branch");
        f.final_response(1, 486);
        assert_eq!(drain(&mut f), [ForkOutput::Final(486)]);

        let mut f = ForkContext::new(2);
        f.provisional(0, 180);
        f.provisional(1, 180);
        drain(&mut f);
        f.give_up(408);
        assert_eq!(
            drain(&mut f),
            [ForkOutput::Cancel(0), ForkOutput::Cancel(1), ForkOutput::Final(408)]
        );
        // Their 487s come back and change nothing.
        f.final_response(0, 487);
        f.final_response(1, 487);
        assert!(drain(&mut f).is_empty());
    }

    #[test]
    fn a_busy_phone_beats_one_that_does_not_answer() {
        let mut f = ForkContext::new(2);
        f.provisional(1, 180);
        f.final_response(0, 486);
        drain(&mut f);
        f.give_up(408);
        assert_eq!(drain(&mut f), [ForkOutput::Cancel(1), ForkOutput::Final(486)]);

        let mut f = ForkContext::new(2);
        f.timed_out(0);
        f.final_response(1, 480);
        assert_eq!(drain(&mut f), [ForkOutput::Final(480)]);
    }

    #[test]
    fn a_6xx_ends_the_search_at_once() {
        let mut f = ForkContext::new(3);
        f.provisional(0, 180);
        f.provisional(1, 183);
        assert_eq!(drain(&mut f), [ForkOutput::Provisional(180)]);
        f.final_response(1, 603);
        assert_eq!(
            drain(&mut f),
            [ForkOutput::Cancel(0), ForkOutput::Final(603)],
            "branch 2 is cancelled once it shows life"
        );
        f.final_response(0, 200);
        assert_eq!(drain(&mut f), [ForkOutput::Release(0)], "too late: BYE");
        f.final_response(2, 486);
        assert!(drain(&mut f).is_empty());
    }

    #[test]
    fn a_branch_given_up_on_that_answers_is_released() {
        let mut f = ForkContext::new(1);
        f.give_up(408);
        assert_eq!(drain(&mut f), [ForkOutput::Final(408)]);
        f.provisional(0, 180);
        assert_eq!(drain(&mut f), [ForkOutput::Cancel(0)]);
        f.final_response(0, 200);
        assert_eq!(drain(&mut f), [ForkOutput::Release(0)]);
        f.final_response(0, 200);
        assert!(drain(&mut f).is_empty(), "released once");
    }

    #[test]
    fn best_response_follows_rfc_3261_16_7() {
        assert_eq!(best_response(&[]), 408);
        assert_eq!(best_response(&[486, 600, 404]), 600);
        assert_eq!(best_response(&[500, 404, 302]), 302, "lowest class");
        assert_eq!(best_response(&[408, 486, 480]), 486);
        assert_eq!(best_response(&[487, 408]), 408);
        assert_eq!(best_response(&[480, 487]), 480);
        assert_eq!(best_response(&[404, 486]), 404, "first among equals");
        assert_eq!(best_response(&[503]), 500, "503 is not forwarded");
        assert_eq!(best_response(&[503, 502]), 500);
        assert_eq!(best_response(&[502, 503]), 502);
        assert_eq!(best_response(&[150, 200, 999]), 408, "only 3xx–6xx count");
    }

    #[test]
    fn out_of_range_branches_are_ignored() {
        let mut f = ForkContext::new(1);
        f.provisional(5, 180);
        f.final_response(5, 200);
        f.timed_out(5);
        assert!(drain(&mut f).is_empty());
        assert!(!f.is_over() && f.is_open(0) && !f.is_open(5) && f.len() == 1 && !f.is_empty());
        let mut f = ForkContext::new(1);
        f.final_response(0, 500);
        f.final_response(0, 200);
        assert_eq!(drain(&mut f), [ForkOutput::Final(500)], "one final per branch");
    }
}
