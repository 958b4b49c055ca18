//! Any bytes as an audit.log line and as a netlink body: parsing and every field decoder must
//! return a value or a typed error, never panic, and offsets must point inside the input.
#![no_main]

use execsentry_linux::record::{field_kind, fields_of, FieldKind};
use execsentry_linux::{parse_body, parse_line};
use libfuzzer_sys::fuzz_target;

fn exercise(input: &[u8], rec: &execsentry_linux::Record<'_>) {
    for f in rec.fields() {
        match f {
            Ok(f) => {
                assert!(f.offset <= input.len());
                let _ = f.value();
                let _ = f.string();
                let _ = f.num(16);
                let _ = f.signed();
                let _ = f.u32_dec();
                if field_kind(f.rtype, f.key) == FieldKind::Str {
                    let mut out = Vec::new();
                    let _ = f.string_into(&mut out);
                }
            }
            Err(e) => assert!(e.offset <= input.len(), "{e} beyond {}", input.len()),
        }
    }
    let _ = fields_of(rec.rtype, rec.fields_text()).count();
}

fuzz_target!(|data: &[u8]| {
    match parse_line(data) {
        Ok(rec) => exercise(data, &rec),
        Err(e) => assert!(e.offset <= data.len()),
    }
    if let [a, b, body @ ..] = data {
        let rtype = u16::from_le_bytes([*a, *b]);
        match parse_body(rtype, body) {
            Ok(rec) => exercise(body, &rec),
            Err(e) => assert!(e.offset <= body.len()),
        }
    }
});
