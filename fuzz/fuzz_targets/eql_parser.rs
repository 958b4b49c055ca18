//! Arbitrary UTF-8 into the EQL parser: it must never panic, overflow its stack or loop, and
//! what it returns must point into the input (every span inside it, on character boundaries).

#![no_main]

use execsentry::eql::ast::{Expr, ExprKind, Query, QueryBody, SequenceItem, Span};
use execsentry::eql::parser::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match parse(src) {
        Ok(query) => check_query(src, &query),
        Err(errors) => {
            assert!(!errors.is_empty(), "Err without errors for {src:?}");
            let mut previous = 0;
            for error in &errors {
                check_span(src, error.span);
                assert!(error.span.start >= previous, "errors out of order");
                previous = error.span.start;
                let _ = error.render(src);
            }
        }
    }
});

fn check_span(src: &str, span: Span) {
    let (start, end) = (span.start as usize, span.end as usize);
    assert!(
        start <= end && end <= src.len(),
        "span {span:?} outside {src:?}"
    );
    assert!(
        src.is_char_boundary(start) && src.is_char_boundary(end),
        "span {span:?} splits a character of {src:?}"
    );
}

fn check_query(src: &str, query: &Query) {
    check_span(src, query.span);
    let items: Vec<&SequenceItem> = match &query.body {
        QueryBody::Event(event) => {
            check_span(src, event.span);
            check_expr(src, &event.condition);
            Vec::new()
        }
        QueryBody::Sequence(sequence) => {
            sequence.by.iter().for_each(|key| check_expr(src, key));
            sequence
                .items
                .iter()
                .chain(sequence.until.as_ref())
                .collect()
        }
        QueryBody::Sample(sample) => {
            sample.by.iter().for_each(|key| check_expr(src, key));
            sample.items.iter().collect()
        }
    };
    for item in items {
        check_span(src, item.span);
        check_expr(src, &item.query.condition);
        item.by.iter().for_each(|key| check_expr(src, key));
    }
}

/// Recursion is safe: the parser bounds every tree's height.
fn check_expr(src: &str, expr: &Expr) {
    check_span(src, expr.span);
    match &expr.kind {
        ExprKind::Literal(_) | ExprKind::Field(_) => {}
        ExprKind::Not(inner) | ExprKind::Neg(inner) => check_expr(src, inner),
        ExprKind::And(a, b)
        | ExprKind::Or(a, b)
        | ExprKind::Compare(_, a, b)
        | ExprKind::Arith(_, a, b) => {
            check_expr(src, a);
            check_expr(src, b);
        }
        ExprKind::Match {
            value, patterns, ..
        } => {
            check_expr(src, value);
            patterns.iter().for_each(|p| check_expr(src, p));
        }
        ExprKind::In { value, list, .. } => {
            check_expr(src, value);
            list.iter().for_each(|p| check_expr(src, p));
        }
        ExprKind::Call {
            args, name_span, ..
        } => {
            check_span(src, *name_span);
            args.iter().for_each(|p| check_expr(src, p));
        }
    }
}
