//! (Written in the evaluator change.)
