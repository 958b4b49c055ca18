//! `| head N` and `| tail N` over a rule's results, in the order written.
//!
//! `head N` passes the first N results and then nothing: a rule whose first pipe is an
//! exhausted `head` stops evaluating altogether. `tail N` holds the latest N results until the
//! end of input (the end of a replay, or shutdown of a live run) and releases them then — on a
//! live sensor it only delays alerts, which is why no detection rule uses it.

use std::collections::VecDeque;

use super::ast::Pipe;
use super::query::Match;

#[derive(Debug)]
pub(crate) struct Pipes {
    stages: Box<[Stage]>,
}

#[derive(Debug)]
enum Stage {
    Head { left: u64 },
    Tail { keep: usize, held: VecDeque<Match> },
}

impl Pipes {
    pub(crate) fn new(pipes: &[Pipe]) -> Pipes {
        Pipes {
            stages: pipes
                .iter()
                .map(|p| match *p {
                    Pipe::Head(n, _) => Stage::Head { left: n },
                    Pipe::Tail(n, _) => Stage::Tail {
                        keep: usize::try_from(n).unwrap_or(usize::MAX),
                        held: VecDeque::new(),
                    },
                })
                .collect(),
        }
    }

    /// True when no result can ever come out again.
    pub(crate) fn exhausted(&self) -> bool {
        matches!(self.stages.first(), Some(Stage::Head { left: 0 }))
    }

    /// Whether a result arriving now passes straight through (every stage is a `head` with room);
    /// `false` means [`Self::push`] must be given an owned [`Match`].
    pub(crate) fn passes_through(&self) -> bool {
        self.stages
            .iter()
            .all(|s| matches!(s, Stage::Head { left } if *left > 0))
    }

    /// Counts a result that passed through (after [`Self::passes_through`] said it would).
    pub(crate) fn pass(&mut self) {
        for s in self.stages.iter_mut() {
            if let Stage::Head { left } = s {
                *left = left.saturating_sub(1);
            }
        }
    }

    /// Runs a result through every stage; what comes out goes to `out`.
    pub(crate) fn push(&mut self, m: Match, out: &mut dyn FnMut(&Match)) {
        self.run_from(0, m, out);
    }

    fn run_from(&mut self, start: usize, m: Match, out: &mut dyn FnMut(&Match)) {
        for stage in self.stages.iter_mut().skip(start) {
            match stage {
                Stage::Head { left } => {
                    if *left == 0 {
                        return;
                    }
                    *left -= 1;
                }
                Stage::Tail { keep, held } => {
                    if *keep > 0 {
                        if held.len() == *keep {
                            held.pop_front();
                        }
                        held.push_back(m);
                    }
                    return;
                }
            }
        }
        out(&m);
    }

    /// End of input: every `tail` releases what it holds, in order, through the stages after it.
    pub(crate) fn flush(&mut self, out: &mut dyn FnMut(&Match)) {
        for i in 0..self.stages.len() {
            let held = match self.stages.get_mut(i) {
                Some(Stage::Tail { held, .. }) => std::mem::take(held),
                _ => continue,
            };
            for m in held {
                self.run_from(i + 1, m, out);
            }
        }
    }

    /// Results held by `tail` stages.
    pub(crate) fn held(&self) -> usize {
        self.stages
            .iter()
            .map(|s| match s {
                Stage::Tail { held, .. } => held.len(),
                Stage::Head { .. } => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eql::ast::Span;
    use crate::eql::query::MatchKind;

    fn m(i: i64) -> Match {
        Match {
            kind: MatchKind::Event,
            events: vec![],
            join_keys: vec![serde_json::json!(i)],
            completed_by: 0,
        }
    }

    fn run(pipes: &[Pipe], n: i64) -> Vec<i64> {
        let mut p = Pipes::new(pipes);
        let mut got = Vec::new();
        let mut out = |m: &Match| got.push(m.join_keys[0].as_i64().unwrap());
        for i in 1..=n {
            p.push(m(i), &mut out);
        }
        p.flush(&mut out);
        got
    }

    #[test]
    fn head_tail_and_chains() {
        let s = Span::default();
        assert_eq!(run(&[Pipe::Head(2, s)], 5), [1, 2]);
        assert_eq!(run(&[Pipe::Tail(2, s)], 5), [4, 5]);
        assert_eq!(run(&[Pipe::Tail(3, s), Pipe::Head(1, s)], 5), [3]);
        assert_eq!(run(&[Pipe::Head(3, s), Pipe::Tail(1, s)], 5), [3]);
        assert_eq!(run(&[Pipe::Head(0, s)], 5), Vec::<i64>::new());
        assert_eq!(run(&[Pipe::Tail(0, s)], 5), Vec::<i64>::new());
        assert_eq!(run(&[], 3), [1, 2, 3]);
    }

    #[test]
    fn exhaustion_and_pass_through() {
        let s = Span::default();
        let mut p = Pipes::new(&[Pipe::Head(1, s)]);
        assert!(p.passes_through() && !p.exhausted());
        p.pass();
        assert!(p.exhausted() && !p.passes_through());
        assert!(!Pipes::new(&[Pipe::Tail(1, s)]).passes_through());
    }
}
