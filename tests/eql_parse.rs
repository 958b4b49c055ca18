//! The EQL parser on valid queries: the AST shape of each tricky construct (as compact
//! S-expressions), spans, sequences/samples/pipes, a property test that printing any expression
//! tree and parsing it back gives the same tree, and every EQL rule of Elastic's detection-rules
//! corpus when `DETECTION_RULES_DIR` points at its `rules/` directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use execsentry::eql::ast::{
    ArithOp, Category, CmpOp, Expr, ExprKind, Literal, Pipe, Query, QueryBody, SequenceItem, Span,
};
use execsentry::eql::parser::parse;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Rendering the AST compactly.

/// `(op child ...)`, with chains of the same `and`/`or` flattened: the parser builds them as
/// balanced trees, and flattening states what they mean whatever their shape.
fn sexpr(expr: &Expr) -> String {
    let mut out = String::new();
    write_sexpr(expr, &mut out);
    out
}

fn write_sexpr(expr: &Expr, out: &mut String) {
    match &expr.kind {
        ExprKind::Literal(literal) => match literal {
            Literal::Null => out.push_str("null"),
            Literal::Bool(b) => write!(out, "{b}").unwrap(),
            Literal::Int(n) => write!(out, "{n}").unwrap(),
            Literal::Float(f) => write!(out, "{f:?}").unwrap(),
            Literal::Str(s) => write!(out, "{s:?}").unwrap(),
        },
        ExprKind::Field(field) => {
            if field.optional {
                out.push('?');
            }
            out.push_str(&field.path);
        }
        ExprKind::Not(inner) => list(out, "not", [inner.as_ref()]),
        ExprKind::And(..) | ExprKind::Or(..) => {
            let name = if matches!(expr.kind, ExprKind::And(..)) {
                "and"
            } else {
                "or"
            };
            let mut operands = Vec::new();
            flatten(expr, &mut operands);
            list(out, name, operands);
        }
        ExprKind::Compare(op, a, b) => {
            let name = match op {
                CmpOp::Eq => "==",
                CmpOp::Ne => "!=",
                CmpOp::Lt => "<",
                CmpOp::Le => "<=",
                CmpOp::Gt => ">",
                CmpOp::Ge => ">=",
            };
            list(out, name, [a.as_ref(), b.as_ref()]);
        }
        ExprKind::Match {
            op,
            value,
            patterns,
        } => list(
            out,
            op.as_str(),
            std::iter::once(value.as_ref()).chain(patterns),
        ),
        ExprKind::In {
            value,
            list: items,
            insensitive,
            negated,
        } => {
            let name = format!(
                "{}in{}",
                if *negated { "not-" } else { "" },
                if *insensitive { "~" } else { "" }
            );
            list(out, &name, std::iter::once(value.as_ref()).chain(items));
        }
        ExprKind::Arith(op, a, b) => {
            let name = match op {
                ArithOp::Add => "+",
                ArithOp::Sub => "-",
                ArithOp::Mul => "*",
                ArithOp::Div => "/",
                ArithOp::Mod => "%",
            };
            list(out, name, [a.as_ref(), b.as_ref()]);
        }
        ExprKind::Neg(inner) => list(out, "neg", [inner.as_ref()]),
        ExprKind::Call {
            name,
            insensitive,
            args,
            ..
        } => {
            let head = format!("call{} {name}", if *insensitive { "~" } else { "" });
            list(out, &head, args);
        }
    }
}

fn list<'e>(out: &mut String, head: &str, items: impl IntoIterator<Item = &'e Expr>) {
    out.push('(');
    out.push_str(head);
    for item in items {
        out.push(' ');
        write_sexpr(item, out);
    }
    out.push(')');
}

fn flatten<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    let same = |e: &Expr| std::mem::discriminant(&e.kind) == std::mem::discriminant(&expr.kind);
    match &expr.kind {
        ExprKind::And(a, b) | ExprKind::Or(a, b) => {
            for side in [a.as_ref(), b.as_ref()] {
                if same(side) {
                    flatten(side, out);
                } else {
                    out.push(side);
                }
            }
        }
        _ => out.push(expr),
    }
}

fn parse_ok(src: &str) -> Query {
    match parse(src) {
        Ok(query) => query,
        Err(errors) => {
            let rendered: Vec<String> = errors.iter().map(|e| e.render(src)).collect();
            panic!("{src:?} failed to parse:\n{}", rendered.join("\n"));
        }
    }
}

fn event(query: &Query) -> &execsentry::eql::ast::EventQuery {
    match &query.body {
        QueryBody::Event(event) => event,
        other => panic!("not an event query: {other:?}"),
    }
}

/// The condition of `process where <src>`, rendered.
fn cond(src: &str) -> String {
    let query = parse_ok(&format!("process where {src}"));
    sexpr(&event(&query).condition)
}

fn text(src: &str, span: Span) -> &str {
    &src[span.start as usize..span.end as usize]
}

// ---------------------------------------------------------------------------------------------
// Expressions.

#[test]
fn precedence() {
    let table = [
        ("a or b and c", "(or a (and b c))"),
        ("a and b or c", "(or (and a b) c)"),
        ("not a == 1", "(not (== a 1))"),
        ("not a and b", "(and (not a) b)"),
        ("not not a", "(not (not a))"),
        ("not (a or b)", "(not (or a b))"),
        ("(a or b) and c", "(and (or a b) c)"),
        ("a + b * c == d", "(== (+ a (* b c)) d)"),
        ("a - b - c > 0", "(> (- (- a b) c) 0)"),
        ("a / b % c * d < 1", "(< (* (% (/ a b) c) d) 1)"),
        ("(a + b) * c >= 2", "(>= (* (+ a b) c) 2)"),
        ("a + 1 : \"x\"", "(: (+ a 1) \"x\")"),
        ("a * 2 in (1, 2)", "(in (* a 2) 1 2)"),
        ("x != null and y <= 3", "(and (!= x null) (<= y 3))"),
        ("true", "true"),
        (
            "a == b or c == d or e == f",
            "(or (== a b) (== c d) (== e f))",
        ),
    ];
    for (src, expected) in table {
        assert_eq!(cond(src), expected, "{src}");
    }
}

#[test]
fn logical_chains_are_balanced_trees_in_source_order() {
    let query = parse_ok("process where a or b or c or d or e");
    let condition = &event(&query).condition;
    // ((a or b) or (c or d)) or e
    let ExprKind::Or(left, right) = &condition.kind else {
        panic!("{condition:?}")
    };
    assert_eq!(sexpr(right), "e");
    let ExprKind::Or(ab, cd) = &left.kind else {
        panic!("{left:?}")
    };
    assert_eq!(
        (sexpr(ab), sexpr(cd)),
        ("(or a b)".into(), "(or c d)".into())
    );

    // A chain far longer than the nesting limit stays shallow.
    let long = vec!["x == 1"; 5_000].join(" and ");
    let query = parse_ok(&format!("process where {long}"));
    fn height(e: &Expr) -> usize {
        match &e.kind {
            ExprKind::And(a, b) | ExprKind::Or(a, b) => 1 + height(a).max(height(b)),
            ExprKind::Compare(_, a, b) => 1 + height(a).max(height(b)),
            _ => 1,
        }
    }
    // ceil(log2 5000) = 13 levels of `and`, then the comparison and its operands.
    assert_eq!(height(&event(&query).condition), 15);
}

#[test]
fn membership() {
    let table = [
        (r#"x in ("a", "b")"#, r#"(in x "a" "b")"#),
        (r#"x in~ ("A")"#, r#"(in~ x "A")"#),
        (r#"x not in ("a", "b")"#, r#"(not-in x "a" "b")"#),
        (r#"x not in~ ("a")"#, r#"(not-in~ x "a")"#),
        (r#"not x in ("a")"#, r#"(not (in x "a"))"#),
        (
            "x in (1, -2, 3.5, null, true, y, f(z))",
            "(in x 1 -2 3.5 null true y (call f z))",
        ),
        ("x in (1 + 1, (2))", "(in x (+ 1 1) 2)"),
    ];
    for (src, expected) in table {
        assert_eq!(cond(src), expected, "{src}");
    }
}

#[test]
fn matching() {
    let table = [
        (r#"x : "a*""#, r#"(: x "a*")"#),
        (r#"x : ("a*", "b")"#, r#"(: x "a*" "b")"#),
        (r#"x like "a?""#, r#"(like x "a?")"#),
        (r#"x like~ ("a", "b", "c")"#, r#"(like~ x "a" "b" "c")"#),
        (r#"x regex "[a-z]+""#, r#"(regex x "[a-z]+")"#),
        (r#"x regex~ ("a.*", "b")"#, r#"(regex~ x "a.*" "b")"#),
        (r#"x : ("a")"#, r#"(: x "a")"#),
        (r#"not x : "a""#, r#"(not (: x "a"))"#),
    ];
    for (src, expected) in table {
        assert_eq!(cond(src), expected, "{src}");
    }
}

#[test]
fn strings_raw_strings_and_escapes() {
    let table = [
        (r#"x == "a\n\t\r\\\"b""#, r#"(== x "a\n\t\r\\\"b")"#),
        (r#"x == "\u{41}BC""#, r#"(== x "ABC")"#),
        (r#"x == "\u{1F600}\u{00e9}""#, "(== x \"\u{1F600}\u{e9}\")"),
        (r#"x == """C:\Windows\*""""#, r#"(== x "C:\\Windows\\*")"#),
        (r##"x regex """\d+\s\w""""##, r#"(regex x "\\d+\\s\\w")"#),
        // Up to two quotes after the closing `"""` belong to the value.
        ("x == \"\"\"say \"hi\"\"\"\"\"", r#"(== x "say \"hi\"\"")"#),
        ("x == \"\"\"say \"hi\"\"\"\"", r#"(== x "say \"hi\"")"#),
        (r#"x == """a""""#, r#"(== x "a")"#),
        ("x == \"\"\"two\nlines\"\"\"", r#"(== x "two\nlines")"#),
        (r#"x == """#, r#"(== x "")"#),
        (r#"x == "it's""#, r#"(== x "it's")"#),
        (
            r#"x == "a // not a comment""#,
            r#"(== x "a // not a comment")"#,
        ),
    ];
    for (src, expected) in table {
        assert_eq!(cond(src), expected, "{src}");
    }
}

#[test]
fn comments_and_whitespace() {
    let table = [
        ("a == 1 // trailing\n and b", "(and (== a 1) b)"),
        ("a == /* inline */ 1", "(== a 1)"),
        ("a /* outer /* nested */ still comment */ == 1", "(== a 1)"),
        ("\n\ta\r\n==\n  1\n", "(== a 1)"),
        ("a == 1 // comment at the end", "(== a 1)"),
    ];
    for (src, expected) in table {
        assert_eq!(cond(src), expected, "{src}");
    }
}

#[test]
fn fields() {
    let table = [
        ("process.parent.name == 1", "(== process.parent.name 1)"),
        ("@timestamp > 0", "(> @timestamp 0)"),
        (
            "file.Ext.header_bytes : \"7f*\"",
            "(: file.Ext.header_bytes \"7f*\")",
        ),
        ("_private.x_1 == 1", "(== _private.x_1 1)"),
        ("`my-field` == 1", "(== my-field 1)"),
        ("`my-field`.x.`a b` == 1", "(== my-field.x.a b 1)"),
        ("`a``b` == 1", "(== a`b 1)"),
        (
            "?process.parent.executable == null",
            "(== ?process.parent.executable null)",
        ),
        ("? user.id == \"0\"", "(== ?user.id \"0\")"),
        ("?`odd-name` != null", "(!= ?odd-name null)"),
        ("event.sequence > 1", "(> event.sequence 1)"),
        ("a.any.where == 1", "(== a.any.where 1)"),
        ("process . name == 1", "(== process.name 1)"),
        ("AND == 1", "(== AND 1)"),
    ];
    for (src, expected) in table {
        assert_eq!(cond(src), expected, "{src}");
    }
}

#[test]
fn numbers_and_unary_minus() {
    let table = [
        ("x == 0", "(== x 0)"),
        ("x == 9223372036854775807", "(== x 9223372036854775807)"),
        ("x == -9223372036854775808", "(== x -9223372036854775808)"),
        ("x == 1.5", "(== x 1.5)"),
        ("x == 1.", "(== x 1.0)"),
        ("x == .5", "(== x 0.5)"),
        ("x == 1e3", "(== x 1000.0)"),
        ("x == 2.5E-1", "(== x 0.25)"),
        ("x == 1e+2", "(== x 100.0)"),
        ("x == -1.5", "(== x -1.5)"),
        ("x == -x", "(== x (neg x))"),
        ("x == - 5", "(== x -5)"),
        ("x == - -5", "(== x (neg -5))"),
        ("x == -(a + 1)", "(== x (neg (+ a 1)))"),
        ("x == -f(a)", "(== x (neg (call f a)))"),
        ("x == +5", "(== x 5)"),
        ("x == +a", "(== x a)"),
        ("x - -1 == 2", "(== (- x -1) 2)"),
        ("-5 * 2 == x", "(== (* -5 2) x)"),
    ];
    for (src, expected) in table {
        assert_eq!(cond(src), expected, "{src}");
    }
}

#[test]
fn function_calls() {
    let table = [
        (
            r#"startsWith~(process.name, "x")"#,
            r#"(call~ startsWith process.name "x")"#,
        ),
        (
            r#"cidrmatch(source.ip, "10.0.0.0/8", "::1")"#,
            r#"(call cidrmatch source.ip "10.0.0.0/8" "::1")"#,
        ),
        ("length(x) > 3", "(> (call length x) 3)"),
        ("f() == 1", "(== (call f) 1)"),
        ("f (x) == 1", "(== (call f x) 1)"),
        (
            "not stringContains(a, \"b\")",
            "(not (call stringContains a \"b\"))",
        ),
        (
            "f(g(h(1)), a == b)",
            "(call f (call g (call h 1)) (== a b))",
        ),
        ("concat(a, b) : \"x*\"", "(: (call concat a b) \"x*\")"),
    ];
    for (src, expected) in table {
        assert_eq!(cond(src), expected, "{src}");
    }
}

#[test]
fn spans_point_at_the_text() {
    let src = r#"process where ?a.b == "x" and startsWith~(c, "d") and e not in (1, -2)"#;
    let query = parse_ok(src);
    assert_eq!(text(src, query.span), src);
    let ev = event(&query);
    assert_eq!(text(src, ev.span), src);
    assert_eq!(
        ev.category,
        Category::Named("process".into(), Span::new(0, 7))
    );
    let mut operands = Vec::new();
    flatten(&ev.condition, &mut operands);
    let spans: Vec<&str> = operands.iter().map(|e| text(src, e.span)).collect();
    assert_eq!(
        spans,
        [
            r#"?a.b == "x""#,
            r#"startsWith~(c, "d")"#,
            "e not in (1, -2)"
        ]
    );
    let ExprKind::Compare(_, field, string) = &operands[0].kind else {
        panic!()
    };
    assert_eq!(
        (text(src, field.span), text(src, string.span)),
        ("?a.b", r#""x""#)
    );
    let ExprKind::Call { name_span, .. } = &operands[1].kind else {
        panic!()
    };
    assert_eq!(text(src, *name_span), "startsWith~");
    let ExprKind::In { list, .. } = &operands[2].kind else {
        panic!()
    };
    assert_eq!(text(src, list[1].span), "-2");

    let src = "process where (a or b) and -x > 1";
    let condition = parse_ok(src);
    let mut operands = Vec::new();
    flatten(&event(&condition).condition, &mut operands);
    let spans: Vec<&str> = operands.iter().map(|e| text(src, e.span)).collect();
    assert_eq!(spans, ["(a or b)", "-x > 1"]);
}

// ---------------------------------------------------------------------------------------------
// Query shapes.

#[test]
fn categories() {
    let any = parse_ok("any where true");
    assert!(matches!(event(&any).category, Category::Any(span) if span == Span::new(0, 3)));
    for (src, name) in [
        ("process where true", "process"),
        (r#""my-cat" where true"#, "my-cat"),
        (r#""""raw cat""" where true"#, "raw cat"),
        ("Process where true", "Process"),
    ] {
        match &event(&parse_ok(src)).category {
            Category::Named(n, _) => assert_eq!(n, name, "{src}"),
            other => panic!("{src}: {other:?}"),
        }
    }
}

fn sequence(query: &Query) -> &execsentry::eql::ast::Sequence {
    match &query.body {
        QueryBody::Sequence(sequence) => sequence,
        other => panic!("not a sequence: {other:?}"),
    }
}

fn item_summary(item: &SequenceItem) -> String {
    let category = match &item.query.category {
        Category::Any(_) => "any".to_string(),
        Category::Named(name, _) => name.clone(),
    };
    let keys: Vec<String> = item.by.iter().map(sexpr).collect();
    format!(
        "{}[{category} where {}] by [{}] runs {:?}",
        if item.missing { "!" } else { "" },
        sexpr(&item.query.condition),
        keys.join(", "),
        item.runs
    )
}

#[test]
fn sequences() {
    let src = "sequence by host.id, process.entity_id with maxspan=1m
      [process where event.type == \"start\"] by process.pid
      [network where true] by process.parent.pid with runs=3
      until [process where event.type == \"end\"] by process.pid";
    let query = parse_ok(src);
    let seq = sequence(&query);
    let by: Vec<String> = seq.by.iter().map(sexpr).collect();
    assert_eq!(by, ["host.id", "process.entity_id"]);
    let maxspan = seq.maxspan.expect("maxspan");
    assert_eq!(maxspan.millis, 60_000);
    assert_eq!(text(src, maxspan.span), "1m");
    let items: Vec<String> = seq.items.iter().map(item_summary).collect();
    assert_eq!(
        items,
        [
            "[process where (== event.type \"start\")] by [process.pid] runs None",
            "[network where true] by [process.parent.pid] runs Some(3)",
        ]
    );
    let until = seq.until.as_ref().expect("until");
    assert_eq!(
        item_summary(until),
        "[process where (== event.type \"end\")] by [process.pid] runs None"
    );
    assert_eq!(
        text(src, seq.items[1].span),
        "[network where true] by process.parent.pid with runs=3"
    );
    assert_eq!(text(src, seq.span), src);
}

#[test]
fn sequence_variants() {
    // No keys, no maxspan.
    let query = parse_ok("sequence [process where true] [file where true]");
    let seq = sequence(&query);
    assert!(seq.by.is_empty() && seq.maxspan.is_none() && seq.until.is_none());
    assert_eq!(seq.items.len(), 2);

    // maxspan alone, every unit.
    for (span, millis) in [
        ("250ms", 250),
        ("5s", 5_000),
        ("2m", 120_000),
        ("1h", 3_600_000),
        ("1d", 86_400_000),
        ("10 s", 10_000),
    ] {
        let query = parse_ok(&format!(
            "sequence with maxspan={span} [process where true] [file where true]"
        ));
        assert_eq!(
            sequence(&query).maxspan.map(|m| m.millis),
            Some(millis),
            "{span}"
        );
    }

    // One item repeated, with spaces around '='.
    let query = parse_ok("sequence by user.id [authentication where true] with runs = 25");
    let seq = sequence(&query);
    assert_eq!(seq.items.len(), 1);
    assert_eq!(seq.items[0].runs, Some(25));

    // Missing events, leading and trailing.
    let query = parse_ok(
        "sequence by host.id with maxspan=5m ![process where a] [any where b] ![file where c]",
    );
    let summary: Vec<String> = sequence(&query).items.iter().map(item_summary).collect();
    assert_eq!(
        summary,
        [
            "![process where a] by [] runs None",
            "[any where b] by [] runs None",
            "![file where c] by [] runs None",
        ]
    );

    // Per-item keys only.
    let query = parse_ok("sequence [a where true] by x, ?y [b where true] by z, w");
    let keys: Vec<Vec<String>> = sequence(&query)
        .items
        .iter()
        .map(|i| i.by.iter().map(sexpr).collect())
        .collect();
    assert_eq!(keys, [vec!["x", "?y"], vec!["z", "w"]]);
}

#[test]
fn samples() {
    let src = "sample by host.id, process.pid
      [process where true] by user.id
      [network where destination.port == 443] by user.id";
    let query = parse_ok(src);
    let QueryBody::Sample(sample) = &query.body else {
        panic!("{query:?}")
    };
    let by: Vec<String> = sample.by.iter().map(sexpr).collect();
    assert_eq!(by, ["host.id", "process.pid"]);
    let items: Vec<String> = sample.items.iter().map(item_summary).collect();
    assert_eq!(
        items,
        [
            "[process where true] by [user.id] runs None",
            "[network where (== destination.port 443)] by [user.id] runs None",
        ]
    );
    assert_eq!(text(src, sample.span), src);

    let query = parse_ok("sample [process where true] [file where true]");
    let QueryBody::Sample(sample) = &query.body else {
        panic!()
    };
    assert!(sample.by.is_empty());
}

#[test]
fn pipes() {
    let src = "process where true | head 5 | tail 2";
    let query = parse_ok(src);
    assert_eq!(query.pipes.len(), 2);
    assert!(matches!(query.pipes[0], Pipe::Head(5, span) if text(src, span) == "| head 5"));
    assert!(matches!(query.pipes[1], Pipe::Tail(2, span) if text(src, span) == "| tail 2"));
    assert_eq!(text(src, query.span), src);

    let query = parse_ok("sequence [a where true] [b where true] | tail 0");
    assert!(matches!(query.pipes[..], [Pipe::Tail(0, _)]));
}

// ---------------------------------------------------------------------------------------------
// Print-then-parse round trip over generated expression trees.

/// A generated expression, printed with the fewest parentheses precedence allows.
#[derive(Clone, Debug)]
enum Gen {
    Field(String, bool),
    Int(i64),
    Str(String),
    Bool(bool),
    Null,
    Not(Box<Gen>),
    And(Box<Gen>, Box<Gen>),
    Or(Box<Gen>, Box<Gen>),
    Cmp(&'static str, Box<Gen>, Box<Gen>),
    Match(&'static str, Box<Gen>, Vec<String>),
    In(bool, bool, Box<Gen>, Vec<Gen>),
    Arith(&'static str, Box<Gen>, Box<Gen>),
    Neg(Box<Gen>),
    Call(String, bool, Vec<Gen>),
}

/// Binding strength: higher binds tighter.
fn prec(g: &Gen) -> u8 {
    match g {
        Gen::Or(..) => 1,
        Gen::And(..) => 2,
        Gen::Not(..) => 3,
        Gen::Cmp(..) | Gen::Match(..) | Gen::In(..) => 4,
        Gen::Arith("+" | "-", ..) => 5,
        Gen::Arith(..) => 6,
        Gen::Neg(..) => 7,
        _ => 8,
    }
}

fn print(g: &Gen) -> String {
    // `min` is the precedence a child needs to stand without parentheses.
    fn child(g: &Gen, min: u8) -> String {
        if prec(g) < min {
            format!("({})", print(g))
        } else {
            print(g)
        }
    }
    match g {
        Gen::Field(path, optional) => format!("{}{path}", if *optional { "?" } else { "" }),
        Gen::Int(n) if *n < 0 => format!("({n})"),
        Gen::Int(n) => n.to_string(),
        Gen::Str(s) => format!("{s:?}"),
        Gen::Bool(b) => b.to_string(),
        Gen::Null => "null".into(),
        Gen::Not(x) => format!("not {}", child(x, 3)),
        Gen::And(a, b) => format!("{} and {}", child(a, 2), child(b, 3)),
        Gen::Or(a, b) => format!("{} or {}", child(a, 1), child(b, 2)),
        Gen::Cmp(op, a, b) => format!("{} {op} {}", child(a, 5), child(b, 5)),
        Gen::Match(op, a, pats) => {
            let pats: Vec<String> = pats.iter().map(|p| format!("{p:?}")).collect();
            format!("{} {op} ({})", child(a, 5), pats.join(", "))
        }
        Gen::In(negated, insensitive, a, items) => {
            let items: Vec<String> = items.iter().map(print).collect();
            format!(
                "{} {}in{} ({})",
                child(a, 5),
                if *negated { "not " } else { "" },
                if *insensitive { "~" } else { "" },
                items.join(", ")
            )
        }
        Gen::Arith(op, a, b) => {
            let level = if matches!(*op, "+" | "-") { 5 } else { 6 };
            format!("{} {op} {}", child(a, level), child(b, level + 1))
        }
        // A sign directly before a number literal folds into it: keep `neg` visible.
        Gen::Neg(x) if matches!(**x, Gen::Int(_)) => format!("-({})", print(x)),
        Gen::Neg(x) => format!("-{}", child(x, 7)),
        Gen::Call(name, insensitive, args) => {
            let args: Vec<String> = args.iter().map(print).collect();
            format!(
                "{name}{}({})",
                if *insensitive { "~" } else { "" },
                args.join(", ")
            )
        }
    }
}

/// The S-expression the parser should produce for `g`.
fn expected(g: &Gen) -> String {
    fn join(head: &str, items: Vec<String>) -> String {
        let mut s = format!("({head}");
        for item in items {
            s.push(' ');
            s.push_str(&item);
        }
        s.push(')');
        s
    }
    fn chain(g: &Gen, is_and: bool, out: &mut Vec<String>) {
        match g {
            Gen::And(a, b) if is_and => {
                chain(a, true, out);
                chain(b, true, out);
            }
            Gen::Or(a, b) if !is_and => {
                chain(a, false, out);
                chain(b, false, out);
            }
            other => out.push(expected(other)),
        }
    }
    match g {
        Gen::Field(path, optional) => format!("{}{path}", if *optional { "?" } else { "" }),
        Gen::Int(n) => n.to_string(),
        Gen::Str(s) => format!("{s:?}"),
        Gen::Bool(b) => b.to_string(),
        Gen::Null => "null".into(),
        Gen::Not(x) => join("not", vec![expected(x)]),
        Gen::And(..) | Gen::Or(..) => {
            let is_and = matches!(g, Gen::And(..));
            let mut items = Vec::new();
            chain(g, is_and, &mut items);
            join(if is_and { "and" } else { "or" }, items)
        }
        Gen::Cmp(op, a, b) => join(op, vec![expected(a), expected(b)]),
        Gen::Match(op, a, pats) => join(
            op,
            std::iter::once(expected(a))
                .chain(pats.iter().map(|p| format!("{p:?}")))
                .collect(),
        ),
        Gen::In(negated, insensitive, a, items) => join(
            &format!(
                "{}in{}",
                if *negated { "not-" } else { "" },
                if *insensitive { "~" } else { "" }
            ),
            std::iter::once(expected(a))
                .chain(items.iter().map(expected))
                .collect(),
        ),
        Gen::Arith(op, a, b) => join(op, vec![expected(a), expected(b)]),
        Gen::Neg(x) => join("neg", vec![expected(x)]),
        Gen::Call(name, insensitive, args) => join(
            &format!("call{} {name}", if *insensitive { "~" } else { "" }),
            args.iter().map(expected).collect(),
        ),
    }
}

fn gen_expr() -> impl Strategy<Value = Gen> {
    let field = (
        "[a-z_][a-z0-9_]{0,6}(\\.[a-zA-Z@_][a-zA-Z0-9_]{0,5}){0,2}",
        any::<bool>(),
    )
        .prop_filter("not a keyword", |(path, _)| {
            let first = path.split('.').next().unwrap_or("");
            execsentry::eql::lexer::Keyword::from_word(first).is_none()
        })
        .prop_map(|(path, optional)| Gen::Field(path, optional));
    let leaf = prop_oneof![
        field,
        any::<i64>().prop_map(Gen::Int),
        "[ -~é\n\t\"\\\\]{0,8}".prop_map(Gen::Str),
        any::<bool>().prop_map(Gen::Bool),
        Just(Gen::Null),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        let boxed = inner.clone().prop_map(Box::new);
        prop_oneof![
            boxed.clone().prop_map(Gen::Not),
            (boxed.clone(), boxed.clone()).prop_map(|(a, b)| Gen::And(a, b)),
            (boxed.clone(), boxed.clone()).prop_map(|(a, b)| Gen::Or(a, b)),
            (
                prop_oneof![
                    Just("=="),
                    Just("!="),
                    Just("<"),
                    Just("<="),
                    Just(">"),
                    Just(">=")
                ],
                boxed.clone(),
                boxed.clone()
            )
                .prop_map(|(op, a, b)| Gen::Cmp(op, a, b)),
            (
                prop_oneof![
                    Just(":"),
                    Just("like"),
                    Just("like~"),
                    Just("regex"),
                    Just("regex~")
                ],
                boxed.clone(),
                prop::collection::vec("[a-z*?]{0,5}", 1..4)
            )
                .prop_map(|(op, a, pats)| Gen::Match(op, a, pats)),
            (
                any::<bool>(),
                any::<bool>(),
                boxed.clone(),
                prop::collection::vec(inner.clone(), 1..4)
            )
                .prop_map(|(n, i, a, items)| Gen::In(n, i, a, items)),
            (
                prop_oneof![Just("+"), Just("-"), Just("*"), Just("/"), Just("%")],
                boxed.clone(),
                boxed.clone()
            )
                .prop_map(|(op, a, b)| Gen::Arith(op, a, b)),
            boxed.clone().prop_map(Gen::Neg),
            (
                "[a-zA-Z][a-zA-Z0-9]{0,8}",
                any::<bool>(),
                prop::collection::vec(inner, 0..3)
            )
                .prop_filter("not a keyword", |(name, _, _)| {
                    execsentry::eql::lexer::Keyword::from_word(name).is_none()
                })
                .prop_map(|(name, i, args)| Gen::Call(name, i, args)),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn printed_expressions_parse_back_to_the_same_tree(g in gen_expr()) {
        let printed = print(&g);
        let src = format!("process where {printed}");
        let query = parse(&src).map_err(|errors| {
            let rendered: Vec<String> = errors.iter().map(|e| e.render(&src)).collect();
            TestCaseError::fail(format!("{src:?}:\n{}", rendered.join("\n")))
        })?;
        prop_assert_eq!(sexpr(&event(&query).condition), expected(&g), "{}", printed);
        prop_assert_eq!(text(&src, event(&query).condition.span), printed.as_str());
    }
}

// ---------------------------------------------------------------------------------------------
// The detection-rules corpus.

/// Every `.toml` file under `dir`, sorted.
fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            toml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

/// The `query` of a detection rule whose `language` is `eql`.
fn eql_query(text: &str) -> Option<String> {
    let doc: toml::Value = toml::from_str(text).ok()?;
    let rule = doc.get("rule")?;
    if rule.get("language")?.as_str()? != "eql" {
        return None;
    }
    Some(rule.get("query")?.as_str()?.to_string())
}

#[test]
fn detection_rules_corpus_parses() {
    let Some(root) = std::env::var_os("DETECTION_RULES_DIR") else {
        eprintln!("DETECTION_RULES_DIR is not set: skipping the detection-rules corpus test");
        return;
    };
    let root = PathBuf::from(root);
    let mut files = Vec::new();
    for sub in ["linux", "macos", "cross-platform"] {
        toml_files(&root.join(sub), &mut files);
    }
    files.sort();
    let mut queries = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable rule file");
        if let Some(query) = eql_query(&text) {
            queries.push((file.clone(), query));
        }
    }
    assert!(!queries.is_empty(), "no EQL rules under {}", root.display());

    let started = Instant::now();
    let mut failures = Vec::new();
    let mut shapes = [0usize; 3];
    for (file, query) in &queries {
        match parse(query) {
            Ok(ast) => match ast.body {
                QueryBody::Event(_) => shapes[0] += 1,
                QueryBody::Sequence(_) => shapes[1] += 1,
                QueryBody::Sample(_) => shapes[2] += 1,
            },
            Err(errors) => {
                let rendered: Vec<String> = errors.iter().map(|e| e.render(query)).collect();
                failures.push(format!("{}:\n{}", file.display(), rendered.join("\n")));
            }
        }
    }
    let elapsed = started.elapsed();
    println!(
        "parsed {} EQL rules ({} event, {} sequence, {} sample) in {elapsed:?}; {} failed",
        queries.len(),
        shapes[0],
        shapes[1],
        shapes[2],
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        elapsed < Duration::from_secs(1),
        "parsing the corpus took {elapsed:?}"
    );
}
