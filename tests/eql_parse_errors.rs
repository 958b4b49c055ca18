//! The EQL parser on malformed queries: each error's line:column and what it says, recovery that
//! reports several errors in one pass, hostile input (deep nesting, huge input), and properties
//! every error must have on any input (a span inside the text, on character boundaries, sorted).

use execsentry::eql::parser::{parse, MAX_DEPTH};
use execsentry::eql::{Error, ErrorKind};
use proptest::prelude::*;

/// Parses `src`, which must fail; returns its errors as `(line, col, message)`.
fn errors(src: &str) -> Vec<(usize, usize, String)> {
    match parse(src) {
        Ok(query) => panic!("{src:?} parsed, but should not have: {query:?}"),
        Err(errors) => errors
            .iter()
            .map(|e| {
                let (line, col) = e.line_col(src);
                (line, col, e.message.clone())
            })
            .collect(),
    }
}

/// `src` fails with exactly one error, at `line:col`, whose message contains `needle`.
#[track_caller]
fn fails_at(src: &str, line: usize, col: usize, needle: &str) {
    let found = errors(src);
    assert_eq!(
        found.len(),
        1,
        "{src:?}: expected one error, got {found:#?}"
    );
    let (l, c, message) = &found[0];
    assert_eq!((*l, *c), (line, col), "{src:?}: {message}");
    assert!(
        message.contains(needle),
        "{src:?}: message {message:?} does not contain {needle:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Legacy syntax Elasticsearch rejects.

#[test]
fn single_quotes() {
    fails_at(
        "process where process.name == 'bash'",
        1,
        31,
        "single quotes are reserved; use double quotes",
    );
}

#[test]
fn single_equals() {
    fails_at(
        "process where process.name = \"bash\"",
        1,
        28,
        "'=' is not a comparison operator; use '==' for equality",
    );
}

#[test]
fn question_mark_raw_strings() {
    fails_at(
        "process where process.name == ?\"bash\"",
        1,
        31,
        "'?\"...\"' strings are not supported; use a raw string \"\"\"...\"\"\"",
    );
    fails_at(
        "process where x == ?'a'",
        1,
        20,
        "'?'...'' strings are not supported",
    );
}

#[test]
fn join_is_unsupported() {
    let found = parse("join [x where true] [y where true]").unwrap_err();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ErrorKind::Unsupported);
    assert!(found[0].message.contains("'join' is not supported"));
}

// ---------------------------------------------------------------------------------------------
// Lexical errors.

#[test]
fn unterminated_string() {
    fails_at(
        "process where process.name == \"bash",
        1,
        31,
        "unterminated string: expected a closing '\"'",
    );
}

#[test]
fn unterminated_raw_string() {
    fails_at(
        "process where process.name == \"\"\"bash",
        1,
        31,
        "unterminated raw string",
    );
}

#[test]
fn unterminated_block_comment() {
    fails_at(
        "process where a == 1 /* never closed",
        1,
        22,
        "unterminated comment: '/*' has no matching '*/'",
    );
    // Comments nest, so the inner `*/` does not close the outer one.
    fails_at(
        "process where a == 1 /* a /* b */",
        1,
        22,
        "unterminated comment",
    );
}

#[test]
fn bad_escape() {
    fails_at(
        r#"process where a == "C:\Windows""#,
        1,
        23,
        "unknown escape sequence '\\W' in string: valid escapes are",
    );
    fails_at(
        r#"process where a == "it\'s""#,
        1,
        23,
        "a single quote needs no escape",
    );
}

#[test]
fn bad_unicode_escapes() {
    let cases = [
        (
            r#"process where a == "\u{}""#,
            "takes 2 to 8 hex digits, found 0",
        ),
        (
            r#"process where a == "\u{4}""#,
            "takes 2 to 8 hex digits, found 1",
        ),
        (
            r#"process where a == "\u{000000041}""#,
            "takes 2 to 8 hex digits, found 9",
        ),
        (
            r#"process where a == "\u{110000}""#,
            "U+110000 is beyond U+10FFFF",
        ),
        (r#"process where a == "\u{D800}""#, "U+D800 is a surrogate"),
        (r#"process where a == "\u41""#, "expected '{' after \\u"),
        (
            r#"process where a == "\u{4G}""#,
            "expected hex digits and a closing '}'",
        ),
    ];
    for (src, needle) in cases {
        fails_at(src, 1, 21, needle);
    }
}

#[test]
fn unexpected_characters() {
    fails_at("process where a == #", 1, 20, "unexpected character '#'");
    fails_at("process where a && b", 1, 17, "unexpected '&&': use 'and'");
    fails_at("process where a || b", 1, 17, "unexpected '||': use 'or'");
    fails_at(
        "process where !a",
        1,
        15,
        "unexpected '!': use 'not' to negate",
    );
    fails_at("process where a in ~(1)", 1, 20, "unexpected '~'");
    fails_at(
        "process where a ==\u{a0}1",
        1,
        19,
        "unexpected character U+00A0",
    );
}

#[test]
fn quoted_names() {
    fails_at(
        "process where `unterminated == 1",
        1,
        15,
        "unterminated quoted name",
    );
    fails_at("process where `` == 1", 1, 15, "empty quoted name");
}

#[test]
fn numbers_out_of_range() {
    fails_at(
        "process where a == 9223372036854775808",
        1,
        20,
        "integer 9223372036854775808 is too large: integers must fit in a signed 64-bit integer",
    );
    fails_at(
        "process where a == 99999999999999999999",
        1,
        20,
        "integer 99999999999999999999 is too large",
    );
    fails_at(
        "process where a == -9223372036854775809",
        1,
        20,
        "integer -9223372036854775809 is too small",
    );
    fails_at(
        "process where a == 1e999",
        1,
        20,
        "too large for a 64-bit float",
    );
}

// ---------------------------------------------------------------------------------------------
// Expressions.

#[test]
fn dangling_operators() {
    fails_at(
        "process where a ==",
        1,
        19,
        "expected a value after '==', found end of query",
    );
    fails_at(
        "process where a == and b",
        1,
        20,
        "expected a value after '==', found 'and'",
    );
    fails_at(
        "process where a and",
        1,
        20,
        "expected a condition after 'and', found end of query",
    );
    fails_at(
        "process where not",
        1,
        18,
        "expected a condition after 'not', found end of query",
    );
    fails_at(
        "process where a + * 2 == 1",
        1,
        19,
        "expected a value after '+', found '*'",
    );
    fails_at(
        "process where a == -",
        1,
        21,
        "expected a value after '-', found end of query",
    );
}

#[test]
fn unbalanced_parentheses_and_brackets() {
    fails_at(
        "process where (a == 1 or b == 2",
        1,
        32,
        "expected ')' to close the '(' opened at 1:15, found end of query",
    );
    fails_at(
        "process where a == 1)",
        1,
        21,
        "unmatched ')': no '(' is open here",
    );
    fails_at(
        "process where a == 1 ]",
        1,
        22,
        "unmatched ']': no '[' is open here",
    );
    fails_at(
        "sequence [process where true [file where true]",
        1,
        30,
        "expected ']' to close the sequence item opened at 1:10, found '['",
    );
    fails_at(
        "process where f(a, b",
        1,
        21,
        "expected ',' or ')' to close the list opened at 1:16, found end of query",
    );
    fails_at("process where () == 1", 1, 15, "empty parentheses");
}

#[test]
fn lists() {
    fails_at(
        "process where a in ()",
        1,
        20,
        "empty list after 'in': expected at least one value",
    );
    fails_at(
        "process where a : ()",
        1,
        19,
        "empty list after ':': expected at least one pattern",
    );
    fails_at(
        "process where a in (1,)",
        1,
        23,
        "expected a value after ',', found ')'",
    );
    fails_at(
        "process where a in \"x\"",
        1,
        20,
        "expected '(' after 'in': its values are a parenthesised list",
    );
}

#[test]
fn chained_comparisons() {
    fails_at(
        "process where a == b == c",
        1,
        22,
        "comparisons cannot be chained",
    );
    fails_at(
        "process where a : \"x\" == true",
        1,
        23,
        "comparisons cannot be chained",
    );
    fails_at(
        "process where a < b in (1)",
        1,
        21,
        "comparisons cannot be chained",
    );
    fails_at(
        "process where a == b not in (1)",
        1,
        22,
        "unexpected 'not' after a comparison: comparisons cannot be chained",
    );
}

#[test]
fn patterns_are_literals() {
    fails_at(
        "process where process.name : process.parent.name",
        1,
        30,
        "a field cannot be matched against another field",
    );
}

#[test]
fn field_errors() {
    let found = parse("process where a[0] == 1").unwrap_err();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ErrorKind::Unsupported);
    assert_eq!(found[0].line_col("process where a[0] == 1"), (1, 16));
    assert!(found[0]
        .message
        .contains("array indexes like 'a[0]' are not supported"));

    fails_at(
        "process where a.b. == 1",
        1,
        20,
        "expected a field name after '.', found '=='",
    );
    fails_at(
        "process where ? == 1",
        1,
        17,
        "expected a field name after '?', found '=='",
    );
    fails_at(
        "process where foo~ == 1",
        1,
        15,
        "expected '(' after 'foo~'",
    );
    fails_at(
        "process where a not == 1",
        1,
        17,
        "unexpected 'not' after a value",
    );
}

// ---------------------------------------------------------------------------------------------
// Query shapes.

#[test]
fn missing_where_and_category() {
    fails_at(
        "process process.name == \"x\"",
        1,
        9,
        "expected 'where' after the event category 'process', found 'process'; a query reads",
    );
    fails_at(
        "where a == 1",
        1,
        1,
        "missing event category before 'where'",
    );
    fails_at(
        "",
        1,
        1,
        "expected an event category (e.g. 'process' or 'any'), found end of query",
    );
    fails_at(
        "process where",
        1,
        14,
        "expected a condition after 'where', found end of query",
    );
}

#[test]
fn stray_tokens_at_the_end() {
    fails_at(
        "process where a == 1 b == 2",
        1,
        22,
        "expected 'and', 'or', a pipe '|' or the end of the query, found 'b'",
    );
    fails_at(
        "process where a == 1 AND b == 2",
        1,
        22,
        "keywords are lowercase: write 'and'",
    );
    fails_at(
        "sequence [a where true] [b where true] x",
        1,
        40,
        "expected a sequence item '[...]', a pipe '|' or the end of the query, found 'x'",
    );
    fails_at(
        "process where true | head 1 2",
        1,
        29,
        "expected a pipe '|' or the end of the query, found number 2",
    );
}

#[test]
fn pipes() {
    fails_at(
        "process where true | unique process.name",
        1,
        22,
        "pipe 'unique' is not supported: Elasticsearch EQL supports only '| head N' and '| tail N'",
    );
    fails_at(
        "process where true | head",
        1,
        26,
        "expected a number of results after 'head', found end of query",
    );
    fails_at(
        "process where true | tail -1",
        1,
        27,
        "expected a number of results after 'tail', found '-'",
    );
}

#[test]
fn maxspan() {
    let cases = [
        (
            "5x",
            24,
            "unknown time unit 'x' in maxspan; expected ms, s, m, h or d",
        ),
        ("5S", 24, "unknown time unit 'S'"),
        (
            "5",
            23,
            "maxspan needs a time unit (ms, s, m, h or d), e.g. 5s",
        ),
        ("0s", 23, "maxspan must be greater than zero"),
        ("1.5s", 23, "maxspan must be a whole number"),
        ("99999999999999999d", 23, "maxspan is too large"),
    ];
    for (span, col, needle) in cases {
        let src = format!("sequence with maxspan={span} [a where true] [b where true]");
        fails_at(&src, 1, col, needle);
    }
    fails_at(
        "sequence with maxspan==5s [a where true] [b where true]",
        1,
        22,
        "use a single '=' after 'maxspan'",
    );
    fails_at(
        "sequence with maxspan=1m by a [x where true] [y where true]",
        1,
        26,
        "'by' must come before 'with'",
    );
}

#[test]
fn runs() {
    fails_at(
        "sequence [a where true] with runs=0",
        1,
        35,
        "runs must be between 1 and 100, found 0",
    );
    fails_at(
        "sequence [a where true] with runs=101",
        1,
        35,
        "runs must be between 1 and 100, found 101",
    );
    fails_at(
        "sequence [a where true] [b where true] with maxspan=1s",
        1,
        45,
        "'with maxspan=...' belongs to the sequence",
    );
    fails_at(
        "sample by a [x where true] with runs=2",
        1,
        28,
        "sample items take no 'with runs=N'",
    );
}

#[test]
fn sequence_rules() {
    fails_at(
        "sequence [a where true]",
        1,
        1,
        "a sequence needs at least two items, or one item 'with runs=N'",
    );
    fails_at(
        "sequence by host.id",
        1,
        20,
        "expected a sequence item '[category where condition]', found end of query",
    );
    fails_at(
        "sequence [x where true] ![y where true]",
        1,
        25,
        "a missing event '![...]' needs the sequence to have 'with maxspan=...'",
    );
    fails_at(
        "sequence with maxspan=1m ![x where true] ![y where true]",
        1,
        1,
        "at least one item that is not a missing event",
    );
    fails_at(
        "sequence [x where true] [y where true] until ![z where true]",
        1,
        46,
        "the 'until' item cannot be a missing event",
    );
    fails_at(
        "sequence [x where true] by a [y where true]",
        1,
        30,
        "inconsistent number of join keys: the first item has 1 'by' key, this one has 0",
    );
    fails_at(
        "sample by a ![x where true]",
        1,
        13,
        "a sample cannot have missing events",
    );
    fails_at(
        "sample [x where true] [y where true] until [z where true]",
        1,
        38,
        "a sample has no 'until'",
    );
}

// ---------------------------------------------------------------------------------------------
// Positions on later lines, several errors in one pass.

#[test]
fn error_on_line_three() {
    let src = "process where\n  process.name == \"bash\" and\n  process.args ==\n";
    fails_at(src, 4, 1, "expected a value after '==', found end of query");

    let src = "sequence by host.id with maxspan=1m\n  [process where true]\n  [file where file.path : 'x']";
    fails_at(src, 3, 27, "single quotes are reserved");
}

#[test]
fn several_errors_in_one_pass() {
    let src = "process where\n  a == 1 and\n  b == 'x' and c = 2 and d == \"\\q\"";
    let found = errors(src);
    let positions: Vec<(usize, usize)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(positions, [(3, 8), (3, 18), (3, 32)], "{found:#?}");

    // A broken operand of `and`/`or` does not hide the next one's error.
    let found = errors("process where (a == ) and (b == ) or c in ()");
    let columns: Vec<usize> = found.iter().map(|(_, c, _)| *c).collect();
    assert_eq!(columns, [21, 33, 43], "{found:#?}");

    // Each broken sequence item is reported, and the pipes after them too.
    let found = errors("sequence [x where a == ] [y where true] [z where b == ] | sort a");
    let columns: Vec<usize> = found.iter().map(|(_, c, _)| *c).collect();
    assert_eq!(columns, [24, 55, 59], "{found:#?}");

    // Broken list items, then a good one.
    let found = errors("process where a in (b ==, \"x\", 'y')");
    let columns: Vec<usize> = found.iter().map(|(_, c, _)| *c).collect();
    assert_eq!(columns, [25, 32], "{found:#?}");
}

// ---------------------------------------------------------------------------------------------
// Hostile input.

#[test]
fn deep_nesting_is_refused() {
    for (open, close) in [("(", ")"), ("not ", ""), ("-", ""), ("f(", ")")] {
        let depth = MAX_DEPTH as usize + 1;
        let src = format!(
            "process where {}x == 1{}",
            open.repeat(depth),
            close.repeat(depth)
        );
        let found = errors(&src);
        assert_eq!(found.len(), 1, "{open}: {found:#?}");
        assert!(
            found[0].2.contains("expression nested too deeply"),
            "{found:#?}"
        );
    }
    // Just under the limit is fine.
    let depth = MAX_DEPTH as usize - 8;
    let src = format!(
        "process where {}x == 1{}",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    assert!(parse(&src).is_ok());

    // A long arithmetic chain builds a tall tree: refused the same way, not overflowing later.
    let src = format!("process where x == {}", vec!["1"; 1_000].join(" + "));
    let found = errors(&src);
    assert!(
        found[0].2.contains("expression nested too deeply"),
        "{found:#?}"
    );
}

#[test]
fn huge_hostile_inputs_terminate_quickly() {
    let started = std::time::Instant::now();
    let inputs = [
        "(".repeat(1_000_000),
        "[".repeat(1_000_000),
        "not ".repeat(250_000),
        "-".repeat(1_000_000),
        "#".repeat(1_000_000),
        "\"".repeat(1_000_001),
        format!("sequence {}", "[a where ".repeat(100_000)),
        format!("process where {}", "a == ".repeat(200_000)),
        format!("process where {}", "a and ".repeat(200_000)),
        format!("process where x in ({}", "(".repeat(500_000)),
    ];
    for input in &inputs {
        let errors = parse(input).unwrap_err();
        assert!(!errors.is_empty() && errors.len() <= 64);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

// ---------------------------------------------------------------------------------------------
// Edge inputs at token and character boundaries. Crash inputs found by fuzzing (fuzz/ target
// `eql_parser`) belong here too; three minutes of fuzzing have found none so far.

#[test]
fn edge_inputs_give_well_formed_errors() {
    let inputs = [
        "\"",
        "\"\\",
        "\"\\u",
        "\"\\u{",
        "\"\\u{41",
        "?",
        "?\"",
        "?'",
        "'",
        "\"\"\"",
        "\"\"\"\"",
        "`",
        "``",
        "```",
        "/*",
        "/*/",
        "/**",
        "//",
        "1e",
        "1e+",
        ".5.5",
        "1..2",
        "a.",
        "a..b",
        "![",
        "!",
        "~",
        "|",
        "||",
        "&",
        "\u{feff}",
        "é",
        "process where é",
        "process where a == \"é\\é\"",
        "sequence [",
        "sequence ![",
        "sequence by",
        "sequence with",
        "sequence with maxspan",
        "sequence with maxspan=",
        "sample by",
        "process where f~",
        "process where f~(",
        "process where a in",
        "process where a in (",
        "process where a : (",
        "process where (",
        "process where a[",
        "process where a[0",
        "process where true |",
        "process where true | head 1 |",
        "process where \"\\u{D7FF}\\u{E000}\" == x ==",
    ];
    for input in inputs {
        assert!(parse(input).is_err(), "{input:?} should not parse");
        assert_errors_are_well_formed(input);
    }
}

// ---------------------------------------------------------------------------------------------
// Properties of every error on any input.

fn assert_errors_are_well_formed(src: &str) {
    let Err(errors) = parse(src) else { return };
    assert!(!errors.is_empty());
    let mut previous = 0;
    for error in &errors {
        let Error { span, message, .. } = error;
        let (start, end) = (span.start as usize, span.end as usize);
        assert!(start <= end && end <= src.len(), "{src:?}: span {span:?}");
        assert!(
            src.is_char_boundary(start) && src.is_char_boundary(end),
            "{src:?}: span {span:?} splits a character"
        );
        assert!(start >= previous, "{src:?}: errors out of order");
        previous = start;
        assert!(!message.is_empty());
        let _ = error.render(src);
    }
}

/// Fragments of EQL, so generated inputs get past the lexer and exercise the parser.
fn eql_soup() -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(vec![
        "process",
        "any",
        "where",
        "sequence",
        "sample",
        "by",
        "with",
        "maxspan=5s",
        "runs=3",
        "until",
        "[",
        "![",
        "]",
        "(",
        ")",
        "and",
        "or",
        "not",
        "in",
        "in~",
        ":",
        "like~",
        "regex",
        "==",
        "=",
        "!=",
        "<=",
        "+",
        "-",
        "*",
        ",",
        ".",
        "?",
        "|",
        "head",
        "x.y",
        "`q`",
        "f~(",
        "1",
        "-9223372036854775808",
        "1.5e3",
        "\"s\"",
        "\"\"\"r\"\"\"",
        "'s'",
        "\"\\u{41}\"",
        "/*",
        "*/",
        "//",
        "\n",
        "é",
    ]);
    prop::collection::vec(fragment, 0..40).prop_map(|parts| parts.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_and_errors_point_into_it(src in "\\PC{0,64}") {
        assert_errors_are_well_formed(&src);
    }

    #[test]
    fn eql_like_text_never_panics_and_errors_point_into_it(src in eql_soup()) {
        assert_errors_are_well_formed(&src);
    }
}

/// The nesting limit keeps parsing within this much stack, in debug builds too (release needs
/// about half), so rules can be loaded on an ordinary 2 MiB thread.
const STACK: usize = 1024 * 1024;

#[test]
fn nesting_at_the_limit_fits_in_a_small_stack() {
    // The costliest path per level: a call whose argument is a negated, parenthesised condition.
    // Each level is four levels of nesting (call, `not`, `-`, parentheses).
    let level = "f(not -(";
    let depth = MAX_DEPTH as usize / 4 - 1;
    let src = format!(
        "process where {}x{} == 1",
        level.repeat(depth),
        "))".repeat(depth)
    );
    let handle = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || parse(&src).map(|_| ()))
        .expect("spawn");
    let result = handle.join().expect("parser overflowed its stack");
    assert!(result.is_ok(), "{result:?}");
}
