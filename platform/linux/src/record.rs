//! One audit record, parsed in place.
//!
//! Two spellings reach us. A netlink datagram carries the type in its header and a body
//! `audit(SEC.MSEC:SERIAL): k=v k=v ...` ([`parse_body`]); an audit.log line or the auditd plugin
//! stream spells the type out, `[node=N ]type=NAME msg=audit(SEC.MSEC:SERIAL): ...`, and ENRICHED logs
//! append auditd's interpretation after a 0x1D byte ([`parse_line`]). Both give a [`Record`] that
//! borrows the input; [`Record::fields`] walks `key=value` pairs lazily and each [`Field`] decodes on
//! demand, so parsing allocates nothing except where a hex string has to become bytes.
//!
//! Decoding depends on the field name because the text is ambiguous: `a0=616263` is a hex number
//! on SYSCALL and a hex-encoded string on EXECVE. See [`field_kind`].

use std::borrow::Cow;

use crate::types;

/// An audit timestamp: wall-clock seconds and the coarse (jiffy-based) milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AuditTime {
    /// Seconds since the Unix epoch.
    pub sec: u64,
    /// Milliseconds, 0..=999. Coarse: a multiple of the jiffy, never use it to order events.
    pub ms: u16,
}

impl AuditTime {
    /// Milliseconds since the epoch, saturating.
    pub fn as_millis(self) -> u64 {
        self.sec
            .saturating_mul(1000)
            .saturating_add(u64::from(self.ms))
    }
}

/// Why a record or one of its fields could not be read, and where (byte offset into the input
/// that was handed to [`parse_body`] or [`parse_line`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {offset}: {kind}")]
pub struct ParseError {
    /// Byte offset into the parsed input.
    pub offset: usize,
    /// What was wrong there.
    pub kind: ParseErrorKind,
}

/// What the parser expected and did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A log line does not start with `type=` (after an optional `node=`).
    #[error("expected `type=NAME` at the start of the line")]
    MissingType,
    /// A `type=` name that is neither known nor `UNKNOWN[n]`.
    #[error("unknown record type name")]
    UnknownType,
    /// No `msg=audit(` after the type.
    #[error("expected ` msg=audit(` after the type")]
    MissingMsg,
    /// The body does not start with `audit(`.
    #[error("expected `audit(SECONDS.MILLIS:SERIAL): `")]
    MissingHeader,
    /// A malformed part of `audit(SEC.MSEC:SERIAL):`.
    #[error("malformed record header: expected {0}")]
    BadHeader(&'static str),
    /// A `"` or `'` value with no closing quote.
    #[error("unterminated quoted value")]
    UnterminatedQuote,
    /// An unquoted string field that is not an even-length run of hex digits.
    #[error("string value is neither quoted nor hex")]
    BadHex,
    /// A numeric field that does not parse in its radix.
    #[error("invalid number for this field")]
    BadNumber,
}

fn err(offset: usize, kind: ParseErrorKind) -> ParseError {
    ParseError { offset, kind }
}

/// One parsed record; borrows the buffer it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Record type (`nlmsg_type`, or the number for the `type=` name).
    pub rtype: u16,
    /// The event's timestamp; every record of one event carries the same.
    pub time: AuditTime,
    /// The event's serial; every record of one event carries the same.
    pub serial: u32,
    /// `node=` prefix of a log line, when auditd was configured to write one.
    pub node: Option<&'a [u8]>,
    /// auditd's ENRICHED interpretation (the bytes after 0x1D), kept but not parsed: it is a
    /// lookup made when auditd wrote the line and may differ from the truth at exec time.
    pub enrichment: Option<&'a [u8]>,
    fields: &'a [u8],
    fields_offset: usize,
}

impl<'a> Record<'a> {
    /// The raw `key=value ...` text after `audit(...):`.
    pub fn fields_text(&self) -> &'a [u8] {
        self.fields
    }

    /// The `key=value` pairs in order, lazily.
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            rtype: self.rtype,
            text: self.fields,
            pos: 0,
            base: self.fields_offset,
            done: false,
        }
    }

    /// The first field named `key` (a linear scan; the assembler walks [`Record::fields`] once instead).
    pub fn field(&self, key: &[u8]) -> Option<Field<'a>> {
        self.fields().map_while(Result::ok).find(|f| f.key == key)
    }
}

/// The `key=value` pairs of a record's field text (as kept by [`Record::fields_text`]); offsets in
/// errors are relative to `text`.
pub fn fields_of(rtype: u16, text: &[u8]) -> Fields<'_> {
    Fields {
        rtype,
        text,
        pos: 0,
        base: 0,
        done: false,
    }
}

/// Parse a netlink record body, whose type came from the netlink header.
///
/// Trailing NULs and newlines are ignored (some kernels pad; the socket layer strips them too).
pub fn parse_body(rtype: u16, body: &[u8]) -> Result<Record<'_>, ParseError> {
    parse_after_type(rtype, body, 0, None, None)
}

/// Parse one audit.log / auditd plugin line (`type=NAME msg=audit(...): ...`), with or without a
/// trailing newline and an ENRICHED (0x1D) suffix.
pub fn parse_line(line: &[u8]) -> Result<Record<'_>, ParseError> {
    let (main, enrichment) = match memchr::memchr(0x1d, line) {
        Some(i) => (&line[..i], Some(trim_end(&line[i + 1..]))),
        None => (line, None),
    };
    let mut pos = 0;
    let mut node = None;
    if let Some(rest) = main.strip_prefix(b"node=") {
        let end = memchr::memchr(b' ', rest).ok_or(err(0, ParseErrorKind::MissingType))?;
        node = Some(&rest[..end]);
        pos = 5 + end + 1;
    }
    let rest = &main[pos..];
    let after_type = rest
        .strip_prefix(b"type=")
        .ok_or(err(pos, ParseErrorKind::MissingType))?;
    pos += 5;
    let name_end = find_byte(after_type, b' ').unwrap_or(after_type.len());
    let rtype = types::type_from_name(&after_type[..name_end])
        .ok_or(err(pos, ParseErrorKind::UnknownType))?;
    pos += name_end;
    let rest = &main[pos..];
    if !rest.starts_with(b" msg=") {
        return Err(err(pos, ParseErrorKind::MissingMsg));
    }
    pos += 5;
    parse_after_type(rtype, &main[pos..], pos, node, enrichment).map_err(|e| {
        if e.kind == ParseErrorKind::MissingHeader {
            err(e.offset, ParseErrorKind::MissingMsg)
        } else {
            e
        }
    })
}

fn parse_after_type<'a>(
    rtype: u16,
    text: &'a [u8],
    base: usize,
    node: Option<&'a [u8]>,
    enrichment: Option<&'a [u8]>,
) -> Result<Record<'a>, ParseError> {
    let text = trim_end(text);
    if !text.starts_with(b"audit(") {
        return Err(err(base, ParseErrorKind::MissingHeader));
    }
    // One pass over `SEC.MSEC:SERIAL):`, `i` indexing `text`.
    let mut i = 6;
    let (sec, ms) = match usual_time(&text[6..]) {
        Some(time) => {
            i += 15;
            time
        }
        None => any_time(text, &mut i, base)?,
    };
    let serial_start = i;
    let serial = digits_u64(text, &mut i)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or(err(
            base + serial_start,
            ParseErrorKind::BadHeader("serial (u32)"),
        ))?;
    if text.get(i..i + 2) != Some(b"):") {
        return Err(err(
            base + i,
            ParseErrorKind::BadHeader("`):` after the serial"),
        ));
    }
    i += 2;
    Ok(Record {
        rtype,
        time: AuditTime { sec, ms: ms as u16 },
        serial,
        node,
        enrichment,
        fields: text.get(i..).unwrap_or_default(),
        fields_offset: base + i,
    })
}

/// `SEC.MSEC:` as nearly every record has it (ten-digit seconds, 2001 to 2286; three-digit
/// milliseconds), from one word and a few bytes; `None` sends anything else to [`any_time`].
#[inline]
fn usual_time(s: &[u8]) -> Option<(u64, u64)> {
    let head = s.get(..15)?;
    if head[10] != b'.' || head[14] != b':' {
        return None;
    }
    let high = word_at(head, 0).filter(|&w| all_digits(w))?;
    let digit = |b: u8| Some(u64::from(b.wrapping_sub(b'0'))).filter(|&d| d <= 9);
    let sec = eight_digits(high) * 100 + digit(head[8])? * 10 + digit(head[9])?;
    let ms = digit(head[11])? * 100 + digit(head[12])? * 10 + digit(head[13])?;
    Some((sec, ms))
}

/// `SEC.MSEC:` in general, from `text[*i]`, with the offset and reason of what is wrong.
fn any_time(text: &[u8], i: &mut usize, base: usize) -> Result<(u64, u64), ParseError> {
    let sec_start = *i;
    let sec =
        digits_u64(text, i).ok_or(err(base + sec_start, ParseErrorKind::BadHeader("seconds")))?;
    expect(text, i, b'.', base, "`.` after the seconds")?;
    let ms_start = *i;
    let ms = digits_u64(text, i)
        .filter(|&v| v < 1000 && *i - ms_start <= 3)
        .ok_or(err(
            base + ms_start,
            ParseErrorKind::BadHeader("milliseconds (0-999)"),
        ))?;
    expect(text, i, b':', base, "`:` after the milliseconds")?;
    Ok((sec, ms))
}

/// Consume the byte `want` at `text[*i]`, or fail with `what` at that offset.
fn expect(
    text: &[u8],
    i: &mut usize,
    want: u8,
    base: usize,
    what: &'static str,
) -> Result<(), ParseError> {
    if text.get(*i) == Some(&want) {
        *i += 1;
        Ok(())
    } else {
        Err(err(base + *i, ParseErrorKind::BadHeader(what)))
    }
}

fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [head @ .., last] = s {
        if matches!(*last, 0 | b'\n' | b'\r') {
            s = head;
        } else {
            break;
        }
    }
    s
}

/// The decimal digits at `s[*i..]` as a u64 (1 to 20 digits, no overflow), advancing `*i` past
/// them.
#[inline(always)]
fn digits_u64(s: &[u8], i: &mut usize) -> Option<u64> {
    let start = *i;
    let mut v: u64 = 0;
    let mut overflow = false;
    // Eight digits at a time while they last (timestamps have ten), up to 16 digits.
    while *i - start <= 8 {
        match word_at(s, *i) {
            Some(w) if all_digits(w) => {
                v = v * 100_000_000 + eight_digits(w);
                *i += 8;
            }
            _ => break,
        }
    }
    while let Some(&d) = s.get(*i) {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        // Checked only past 19 digits, which always fit.
        if *i - start < 19 {
            v = v * 10 + u64::from(d);
        } else {
            match v.checked_mul(10).and_then(|v| v.checked_add(u64::from(d))) {
                Some(n) => v = n,
                None => overflow = true,
            }
        }
        *i += 1;
    }
    let n = *i - start;
    (n > 0 && n <= 20 && !overflow).then_some(v)
}

/// Whether all eight bytes of `w` are ASCII digits.
#[inline(always)]
fn all_digits(w: u64) -> bool {
    const HIGH_NIBBLES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    // 0x30..=0x3f, and still 0x3_ after adding 6 (so not 0x3a..=0x3f); no carries once the
    // first test holds.
    w & HIGH_NIBBLES == THREES && (w + 0x0606_0606_0606_0606) & HIGH_NIBBLES == THREES
}

/// The value of eight ASCII digits, first digit in the lowest byte: pairs, then quads, then all.
#[inline(always)]
fn eight_digits(w: u64) -> u64 {
    let w = w - 0x3030_3030_3030_3030;
    let w = (w * 10 + (w >> 8)) & 0x00ff_00ff_00ff_00ff;
    let w = (w * 100 + (w >> 16)) & 0x0000_ffff_0000_ffff;
    (w * 10_000 + (w >> 32)) & 0xffff_ffff
}

/// Lazy iterator over a record's `key=value` pairs.
///
/// Words without `=` (an AVC's `denied { read } for`) are skipped. Values are `"quoted"` (never
/// containing a `"`, by the kernel's hex rule), `'single quoted'` (userspace records' `msg='...'`,
/// which may hold spaces) or run to the next space. An unterminated quote yields one error and ends
/// the iteration.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rtype: u16,
    text: &'a [u8],
    pos: usize,
    base: usize,
    done: bool,
}

impl<'a> Fields<'a> {
    /// The next field with its name's [`key_tag`], taken from the word the key scan has already
    /// loaded, so callers can dispatch on an integer.
    #[inline(always)]
    pub(crate) fn next_tagged(&mut self) -> Option<Result<(u64, Field<'a>), ParseError>> {
        if self.done {
            return None;
        }
        let text = self.text;
        let mut pos = self.pos;
        loop {
            while text.get(pos) == Some(&b' ') {
                pos += 1;
            }
            let Some(rest) = text.get(pos..).filter(|r| !r.is_empty()) else {
                self.done = true;
                self.pos = pos;
                return None;
            };
            let start = pos;
            let (key_len, first_word) = find_key_end(rest);
            if rest.get(key_len) != Some(&b'=') {
                pos += key_len;
                continue;
            }
            let key = &rest[..key_len];
            let tag = match first_word {
                Some(w) if key_len <= 8 => tag_of_word(w, key_len),
                _ => key_tag(key),
            };
            let vstart = start + key_len + 1;
            let value = &rest[key_len + 1..];
            let len = match value.first() {
                Some(&q @ (b'"' | b'\'')) => match find_byte(&value[1..], q) {
                    Some(close) => close + 2,
                    None => {
                        self.done = true;
                        self.pos = pos;
                        return Some(Err(err(
                            self.base + vstart,
                            ParseErrorKind::UnterminatedQuote,
                        )));
                    }
                },
                _ => find_byte(value, b' ').unwrap_or(value.len()),
            };
            self.pos = vstart + len;
            return Some(Ok((
                tag,
                Field {
                    rtype: self.rtype,
                    key,
                    raw: &value[..len],
                    offset: self.base + vstart,
                },
            )));
        }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_tagged().map(|r| r.map(|(_, f)| f))
    }
}

/// A field name of 1 to 8 bytes, none of them NUL, as one integer (little-endian, zero-padded);
/// 0 for any other name. Records dispatch their keys with one `match` on these integers instead
/// of a chain of slice comparisons.
pub(crate) const fn key_tag(key: &[u8]) -> u64 {
    if key.len() > 8 {
        return 0;
    }
    let mut tag = 0u64;
    let mut i = 0;
    while i < key.len() {
        if key[i] == 0 {
            return 0;
        }
        tag |= (key[i] as u64) << (8 * i);
        i += 1;
    }
    tag
}

/// [`key_tag`] of the `len` (at most 8) bytes at the start of the little-endian word `w`.
#[inline(always)]
fn tag_of_word(w: u64, len: usize) -> u64 {
    const MASKS: [u64; 9] = {
        let mut m = [u64::MAX; 9];
        let mut len = 0;
        while len < 8 {
            m[len] = (1u64 << (8 * len)) - 1;
            len += 1;
        }
        m
    };
    let mask = MASKS[len.min(8)];
    let tag = w & mask;
    // A NUL inside the name would make it look like a shorter one.
    if zero_bytes(tag | !mask) != 0 {
        0
    } else {
        tag
    }
}

// Field text is scanned a word (8 bytes) at a time: keys and most values are a few bytes, where
// memchr's setup costs more than the search, while long values (hex arguments) still go to memchr.
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;
/// Bytes scanned by words before a search hands over to memchr.
const WORD_SCAN_BYTES: usize = 32;

/// The high bit of each zero byte of `x` is set (bits above the first zero byte may be spurious,
/// so only the lowest set bit is meaningful).
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The little-endian word at `s[i..i + 8]`, if there are 8 bytes.
#[inline(always)]
fn word_at(s: &[u8], i: usize) -> Option<u64> {
    let w: [u8; 8] = s.get(i..i.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(w))
}

/// Position of the first `needle` in `s`.
#[inline]
fn find_byte(s: &[u8], needle: u8) -> Option<usize> {
    let pattern = ONES * u64::from(needle);
    let mut i = 0;
    while i < WORD_SCAN_BYTES {
        let Some(w) = word_at(s, i) else {
            let tail = s.get(i..).unwrap_or_default();
            return tail.iter().position(|&b| b == needle).map(|p| i + p);
        };
        let hit = zero_bytes(w ^ pattern);
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr::memchr(needle, s.get(i..).unwrap_or_default()).map(|p| i + p)
}

/// Length of the key at the start of `s` (up to the first `=` or space, or all of `s`), and the
/// first word of `s` when it has 8 bytes.
#[inline]
fn find_key_end(s: &[u8]) -> (usize, Option<u64>) {
    const EQ: u64 = ONES * b'=' as u64;
    const SPACE: u64 = ONES * b' ' as u64;
    let first = word_at(s, 0);
    let mut i = 0;
    let mut w = first;
    while let Some(word) = w {
        let hit = zero_bytes(word ^ EQ) | zero_bytes(word ^ SPACE);
        if hit != 0 {
            return (i + (hit.trailing_zeros() / 8) as usize, first);
        }
        i += 8;
        w = word_at(s, i);
    }
    let tail = s.get(i..).unwrap_or_default();
    let len = i + tail
        .iter()
        .position(|&b| b == b'=' || b == b' ')
        .unwrap_or(tail.len());
    (len, first)
}

/// How a field's value is written, by field name (see [`field_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Quoted-or-hex string, untrusted bytes: `comm exe cwd name key proctitle aN aN[i]`...
    Str,
    /// Unsigned decimal: ids, pids, `ses`, `inode`, `items`, `argc`, `syscall`...
    Dec,
    /// Signed decimal: `exit`.
    SignedDec,
    /// Hexadecimal number without `0x`: `arch a0..a3 cap_*`, BPRM_FCAPS capability sets.
    Hex,
    /// Octal: `mode`, `ouid`-style permission bits.
    Octal,
    /// A plain word kept as is: `success=yes`, `tty=pts0`, `nametype=NORMAL`, `dev=fe:00`, `res`...
    Word,
}

/// The encoding of the field `key` in kernel records of type `rtype`.
///
/// `a0..a3` are hex syscall arguments on SYSCALL but argument strings on EXECVE.
pub fn field_kind(rtype: u16, key: &[u8]) -> FieldKind {
    if rtype == types::EXECVE && is_execve_arg(key) {
        return FieldKind::Str;
    }
    match key {
        b"comm" | b"exe" | b"cwd" | b"name" | b"key" | b"proctitle" | b"path" | b"dir"
        | b"old-exe" | b"exe-path" => FieldKind::Str,
        b"arch" | b"a0" | b"a1" | b"a2" | b"a3" | b"fp" | b"fi" | b"fe" | b"old_pp" | b"old_pi"
        | b"old_pe" | b"old_pa" | b"pp" | b"pi" | b"pe" | b"pa" | b"cap_fp" | b"cap_fi"
        | b"cap_fe" | b"cap_fver" | b"cap_pp" | b"cap_pi" | b"cap_pe" | b"cap_pa" => FieldKind::Hex,
        b"exit" => FieldKind::SignedDec,
        b"mode" => FieldKind::Octal,
        b"pid" | b"ppid" | b"auid" | b"uid" | b"gid" | b"euid" | b"suid" | b"fsuid" | b"egid"
        | b"sgid" | b"fsgid" | b"ses" | b"items" | b"item" | b"inode" | b"ouid" | b"ogid"
        | b"argc" | b"syscall" | b"old" | b"audit_pid" | b"audit_enabled" | b"old-auid"
        | b"old-ses" | b"list" | b"cap_frootid" | b"frootid" | b"fver" => FieldKind::Dec,
        _ => FieldKind::Word,
    }
}

/// `aN`, `aN[i]` (EXECVE argument text); not `aN_len`, not `argc`.
fn is_execve_arg(key: &[u8]) -> bool {
    let Some(rest) = key.strip_prefix(b"a") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return false;
    }
    let tail = &rest[digits..];
    tail.is_empty()
        || (tail.len() >= 3
            && tail[0] == b'['
            && tail[tail.len() - 1] == b']'
            && tail[1..tail.len() - 1].iter().all(u8::is_ascii_digit))
}

/// A field value decoded according to [`field_kind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// `(null)`, `(none)` or `?`: the kernel had nothing to print.
    Absent,
    /// Decoded string bytes: borrowed when quoted, owned when hex.
    Str(Cow<'a, [u8]>),
    /// Unsigned number (decimal, hex or octal in the text).
    Unsigned(u64),
    /// Signed decimal number.
    Signed(i64),
    /// Any other value, as written.
    Word(&'a [u8]),
}

/// One `key=value` pair; `raw` is the value as written (with its quotes, if any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The type of the record the field came from (decoding depends on it).
    pub rtype: u16,
    /// The field name.
    pub key: &'a [u8],
    /// The value exactly as written.
    pub raw: &'a [u8],
    /// Byte offset of the value in the parsed input, for error messages.
    pub offset: usize,
}

impl<'a> Field<'a> {
    /// `(null)`, `(none)`, `?` or an empty unquoted value: the kernel had nothing to print.
    pub fn is_absent(&self) -> bool {
        matches!(self.raw, b"(null)" | b"(none)" | b"?" | b"")
    }

    /// Decode by the field's name (see [`field_kind`]).
    pub fn value(&self) -> Result<Value<'a>, ParseError> {
        if self.is_absent() {
            return Ok(Value::Absent);
        }
        Ok(match field_kind(self.rtype, self.key) {
            FieldKind::Str => match self.string()? {
                Some(s) => Value::Str(s),
                None => Value::Absent,
            },
            FieldKind::Dec => Value::Unsigned(self.num(10)?.unwrap_or(0)),
            FieldKind::Hex => Value::Unsigned(self.num(16)?.unwrap_or(0)),
            FieldKind::Octal => Value::Unsigned(self.num(8)?.unwrap_or(0)),
            FieldKind::SignedDec => Value::Signed(self.signed()?.unwrap_or(0)),
            FieldKind::Word => Value::Word(self.raw),
        })
    }

    /// Quoted-or-hex string: `"text"` borrows, `74657874` decodes into a new buffer.
    pub fn string(&self) -> Result<Option<Cow<'a, [u8]>>, ParseError> {
        if let Some(inner) = self.quoted() {
            return Ok(Some(Cow::Borrowed(inner)));
        }
        if self.is_absent() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(self.raw.len() / 2);
        self.hex_into(&mut out)?;
        Ok(Some(Cow::Owned(out)))
    }

    /// Append the decoded string to `out`; `Ok(false)` if the value is absent.
    pub fn string_into(&self, out: &mut Vec<u8>) -> Result<bool, ParseError> {
        if let Some(inner) = self.quoted() {
            out.extend_from_slice(inner);
            return Ok(true);
        }
        if self.is_absent() {
            return Ok(false);
        }
        self.hex_into(out)?;
        Ok(true)
    }

    /// The text between the quotes, if the value is quoted (`"..."` or `'...'`).
    pub fn quoted(&self) -> Option<&'a [u8]> {
        match self.raw {
            [q @ (b'"' | b'\''), inner @ .., last] if q == last => Some(inner),
            _ => None,
        }
    }

    fn hex_into(&self, out: &mut Vec<u8>) -> Result<(), ParseError> {
        decode_hex_into(self.raw, out).map_err(|i| err(self.offset + i, ParseErrorKind::BadHex))
    }

    /// Unsigned number in `radix`; `None` if absent.
    pub fn num(&self, radix: u32) -> Result<Option<u64>, ParseError> {
        // Short plain numbers are nearly every numeric field: no prefix, no absence words.
        let fast = match radix {
            10 => short_dec(self.raw),
            16 => short_hex(self.raw),
            _ => None,
        };
        if fast.is_some() {
            return Ok(fast);
        }
        if self.is_absent() {
            return Ok(None);
        }
        let digits = if radix == 16 {
            self.raw
                .strip_prefix(b"0x")
                .or_else(|| self.raw.strip_prefix(b"0X"))
                .unwrap_or(self.raw)
        } else {
            self.raw
        };
        parse_radix(digits, radix)
            .map(Some)
            .ok_or(err(self.offset, ParseErrorKind::BadNumber))
    }

    /// Unsigned decimal that must fit a u32 (ids, pids); `None` if absent.
    pub fn u32_dec(&self) -> Result<Option<u32>, ParseError> {
        if let Some(v) = short_dec(self.raw) {
            return u32::try_from(v)
                .map(Some)
                .map_err(|_| err(self.offset, ParseErrorKind::BadNumber));
        }
        match self.num(10)? {
            None => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| err(self.offset, ParseErrorKind::BadNumber)),
        }
    }

    /// Signed decimal (`exit=-2`); `None` if absent.
    pub fn signed(&self) -> Result<Option<i64>, ParseError> {
        if self.is_absent() {
            return Ok(None);
        }
        let (neg, digits) = match self.raw.strip_prefix(b"-") {
            Some(d) => (true, d),
            None => (false, self.raw),
        };
        let v = parse_radix(digits, 10)
            .and_then(|v| i64::try_from(v).ok())
            .ok_or(err(self.offset, ParseErrorKind::BadNumber))?;
        Ok(Some(if neg { -v } else { v }))
    }
}

/// 1 to 19 decimal digits (which always fit a u64); `None` for anything else, left to
/// [`parse_radix`].
#[inline]
fn short_dec(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &d in s {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    Some(v)
}

/// 1 to 16 hex digits without `0x` (which always fit a u64); `None` for anything else.
#[inline]
fn short_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v: u64 = 0;
    for &d in s {
        v = v << 4 | u64::from(hex_digit(d)?);
    }
    Some(v)
}

fn parse_radix(digits: &[u8], radix: u32) -> Option<u64> {
    if digits.is_empty() || digits.len() > 64 {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        let x = match (radix, d) {
            // Decimal ids and pids are most fields: keep this path short.
            (_, b'0'..=b'9') if u32::from(d - b'0') < radix => u64::from(d - b'0'),
            (16, _) => u64::from(hex_digit(d)?),
            _ => return None,
        };
        v = v.checked_mul(u64::from(radix))?.checked_add(x)?;
    }
    Some(v)
}

/// Decode uppercase-or-lowercase hex pairs, appending to `out`. On error, the offset of the
/// offending byte (an odd length reports the last byte) and `out` is left as it was.
pub fn decode_hex_into(hex: &[u8], out: &mut Vec<u8>) -> Result<(), usize> {
    if hex.len() % 2 != 0 {
        return Err(hex.len().saturating_sub(1));
    }
    let start = out.len();
    decode_hex_pairs(hex, out, usize::MAX)
        .map(|_| ())
        .map_err(|bad| {
            out.truncate(start);
            bad.offset
        })
}

/// A digit that is not hex, found by [`decode_hex_pairs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadHexDigit {
    /// Its offset in the decoded text.
    pub offset: usize,
    /// The valid high digit of its pair, when the bad one is the low digit.
    pub high: Option<u8>,
}

/// Decode the whole pairs of `hex` (a trailing odd digit is left to the caller), appending at most
/// `room` bytes to `out` and checking the rest; returns how many decoded bytes did not fit. On a
/// bad digit, the bytes before its pair have been appended.
#[inline]
pub(crate) fn decode_hex_pairs(
    hex: &[u8],
    out: &mut Vec<u8>,
    room: usize,
) -> Result<usize, BadHexDigit> {
    let pairs = hex.len() / 2;
    let keep = pairs.min(room);
    out.reserve(keep);
    // Sixteen digits at a time while they are all valid and all kept (long arguments are hex
    // runs of thousands); the pair loop below takes the rest and pins down a bad digit.
    let mut done = 0;
    while done + 8 <= keep {
        let (Some(a), Some(b)) = (word_at(hex, 2 * done), word_at(hex, 2 * done + 8)) else {
            break;
        };
        let (Some(a), Some(b)) = (hex_word(a), hex_word(b)) else {
            break;
        };
        out.extend_from_slice(&(a | b << 32).to_le_bytes());
        done += 8;
    }
    let rest = hex.get(2 * done..).unwrap_or_default();
    for (i, pair) in rest.chunks_exact(2).enumerate() {
        let i = done + i;
        let hi = HEX_VALUES[usize::from(pair[0])];
        let lo = HEX_VALUES[usize::from(pair[1])];
        if (hi | lo) > 15 {
            return Err(if hi > 15 {
                BadHexDigit {
                    offset: 2 * i,
                    high: None,
                }
            } else {
                BadHexDigit {
                    offset: 2 * i + 1,
                    high: Some(hi),
                }
            });
        }
        if i < keep {
            out.push(hi << 4 | lo);
        }
    }
    Ok(pairs - keep)
}

/// The four bytes spelled by the eight hex digits of `w` (first digit in the lowest byte), first
/// byte lowest; `None` if any of the eight is not a hex digit.
#[inline(always)]
fn hex_word(w: u64) -> Option<u64> {
    // Bytes strictly between `m` and `n` (both < 128) get their high bit set; bytes >= 128 never
    // do. Each lane's arithmetic stays within its byte, so no lane disturbs another.
    let between = |x: u64, m: u64, n: u64| {
        let low7 = x & (ONES * 0x7f);
        (ONES * (0x7f + n) - low7) & !x & (low7 + ONES * (0x7f - m)) & HIGHS
    };
    let digit = between(w, b'0' as u64 - 1, b'9' as u64 + 1);
    let letter = between(w | (ONES * 0x20), b'a' as u64 - 1, b'f' as u64 + 1);
    if digit | letter != HIGHS {
        return None;
    }
    // A digit's low nibble is its value; a letter (bit 6 set) has 1..=6 there, plus 9.
    let nibbles = (w & (ONES * 0x0f)) + ((w >> 6) & ONES) * 9;
    // Pair up (high nibble first), then close the gaps between the pairs' bytes.
    let bytes = (nibbles << 4 | nibbles >> 8) & 0x00ff_00ff_00ff_00ff;
    let bytes = (bytes | bytes >> 8) & 0x0000_ffff_0000_ffff;
    Some((bytes | bytes >> 16) & 0xffff_ffff)
}

/// The value of one hex digit.
#[inline(always)]
pub(crate) fn hex_digit(d: u8) -> Option<u8> {
    let v = HEX_VALUES[usize::from(d)];
    (v < 16).then_some(v)
}

/// Hex digit values by byte, 0xff for non-digits: one load instead of three range tests.
static HEX_VALUES: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(r: &Record<'_>) -> Vec<(String, String)> {
        r.fields()
            .map(|f| {
                let f = f.unwrap();
                (
                    String::from_utf8_lossy(f.key).into_owned(),
                    String::from_utf8_lossy(f.raw).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn netlink_body() {
        let r = parse_body(
            types::SYSCALL,
            b"audit(1795843539.453:2057): arch=c000003e syscall=59 success=yes exit=0\0\0",
        )
        .unwrap();
        assert_eq!(r.rtype, 1300);
        assert_eq!(
            r.time,
            AuditTime {
                sec: 1795843539,
                ms: 453
            }
        );
        assert_eq!(r.serial, 2057);
        assert_eq!(r.node, None);
        assert_eq!(
            fields(&r),
            [
                ("arch", "c000003e"),
                ("syscall", "59"),
                ("success", "yes"),
                ("exit", "0")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn eoe_and_continuation_bodies() {
        let eoe = parse_body(types::EOE, b"audit(1.004:7): ").unwrap();
        assert_eq!(eoe.fields().count(), 0);
        let eoe = parse_body(types::EOE, b"audit(1.004:7):").unwrap();
        assert_eq!(eoe.serial, 7);
        let cont = parse_body(types::EXECVE, b"audit(1.004:7):  a2[1]=4141").unwrap();
        let f = cont.fields().next().unwrap().unwrap();
        assert_eq!(f.key, b"a2[1]");
        assert_eq!(f.string().unwrap().unwrap().as_ref(), b"AA");
    }

    #[test]
    fn log_line_with_node_and_enrichment() {
        let line = b"node=web1 type=SYSCALL msg=audit(1795843760.873:8137): arch=c000003e key=\"k\"\x1dARCH=x86_64 SYSCALL=execve\n";
        let r = parse_line(line).unwrap();
        assert_eq!(r.rtype, types::SYSCALL);
        assert_eq!(r.node, Some(&b"web1"[..]));
        assert_eq!(r.serial, 8137);
        assert_eq!(r.enrichment, Some(&b"ARCH=x86_64 SYSCALL=execve"[..]));
        assert_eq!(
            r.field(b"key").unwrap().string().unwrap().unwrap().as_ref(),
            b"k"
        );
        assert_eq!(
            r.field(b"arch").unwrap().value().unwrap(),
            Value::Unsigned(0xc000003e)
        );
    }

    #[test]
    fn unknown_type_form() {
        let r = parse_line(b"type=UNKNOWN[1335] msg=audit(5.000:9): op=connect res=1").unwrap();
        assert_eq!(r.rtype, 1335);
    }

    #[test]
    fn header_errors_have_offsets() {
        let e = parse_line(b"type=SYSCALL msg=audit(12x.000:1): a=b").unwrap_err();
        assert_eq!(
            e,
            err(25, ParseErrorKind::BadHeader("`.` after the seconds"))
        );
        assert_eq!(
            parse_line(b"garbage").unwrap_err().kind,
            ParseErrorKind::MissingType
        );
        assert_eq!(
            parse_line(b"type=BOGUS msg=audit(1.0:1):")
                .unwrap_err()
                .kind,
            ParseErrorKind::UnknownType
        );
        assert_eq!(
            parse_line(b"type=EOE").unwrap_err().kind,
            ParseErrorKind::MissingMsg
        );
        assert_eq!(
            parse_line(b"type=EOE msg=xyz").unwrap_err().kind,
            ParseErrorKind::MissingMsg
        );
        assert_eq!(
            parse_body(1300, b"audit(1.1000:1): ").unwrap_err().kind,
            ParseErrorKind::BadHeader("milliseconds (0-999)")
        );
        assert_eq!(
            parse_body(1300, b"audit(1.100:4294967296): ")
                .unwrap_err()
                .kind,
            ParseErrorKind::BadHeader("serial (u32)")
        );
        assert_eq!(
            parse_body(1300, b"audit(1.100:5 ").unwrap_err().kind,
            ParseErrorKind::BadHeader("`):` after the serial")
        );
        assert_eq!(
            parse_body(1300, b"").unwrap_err().kind,
            ParseErrorKind::MissingHeader
        );
        assert_eq!(
            parse_body(1300, b"audit(99999999999999999999999.1:1):")
                .unwrap_err()
                .kind,
            ParseErrorKind::BadHeader("seconds")
        );
    }

    #[test]
    fn strings_quoted_hex_and_absent() {
        let r = parse_body(
            types::EXECVE,
            b"audit(1.0:1): argc=4 a0=\"it's\" a1=77697468207370616365 a2=\"\" a3=626164FFFE exe=(null) key=(null) tty=(none) x=?",
        )
        .unwrap();
        let v: Vec<_> = r.fields().map(|f| f.unwrap().value().unwrap()).collect();
        assert_eq!(
            v,
            vec![
                Value::Unsigned(4),
                Value::Str(Cow::Borrowed(b"it's")),
                Value::Str(Cow::Owned(b"with space".to_vec())),
                Value::Str(Cow::Borrowed(b"")),
                Value::Str(Cow::Owned(b"bad\xff\xfe".to_vec())),
                Value::Absent,
                Value::Absent,
                Value::Absent,
                Value::Absent,
            ]
        );
        // Borrowed really means borrowed: no copy for quoted values.
        assert!(matches!(
            r.field(b"a0").unwrap().string().unwrap(),
            Some(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn radix_is_per_field() {
        let r = parse_body(
            types::SYSCALL,
            b"audit(1.0:1): arch=c000003e a0=616263 exit=-2 pid=616263 mode=0100755 cap_fp=1ff success=no",
        )
        .unwrap();
        let get = |k: &[u8]| r.field(k).unwrap().value().unwrap();
        assert_eq!(get(b"arch"), Value::Unsigned(0xc000003e));
        assert_eq!(get(b"a0"), Value::Unsigned(0x616263));
        assert_eq!(get(b"exit"), Value::Signed(-2));
        assert_eq!(get(b"pid"), Value::Unsigned(616263));
        assert_eq!(get(b"mode"), Value::Unsigned(0o100755));
        assert_eq!(get(b"cap_fp"), Value::Unsigned(0x1ff));
        assert_eq!(get(b"success"), Value::Word(b"no"));
    }

    #[test]
    fn execve_arg_keys_are_strings() {
        use types::{EXECVE, SYSCALL};
        assert_eq!(field_kind(SYSCALL, b"a0"), FieldKind::Hex);
        assert_eq!(field_kind(EXECVE, b"a0"), FieldKind::Str);
        assert_eq!(field_kind(EXECVE, b"a4"), FieldKind::Str);
        assert_eq!(field_kind(EXECVE, b"a12[3]"), FieldKind::Str);
        assert_eq!(field_kind(EXECVE, b"a12_len"), FieldKind::Word);
        assert_eq!(field_kind(EXECVE, b"a[1]"), FieldKind::Word);
        assert_eq!(field_kind(EXECVE, b"a1[x]"), FieldKind::Word);
        assert_eq!(field_kind(EXECVE, b"argc"), FieldKind::Dec);
    }

    #[test]
    fn bad_values_report_offsets() {
        let body = b"audit(1.0:1): pid=12z name=ABC name=4G";
        let r = parse_body(1302, body).unwrap();
        let mut it = r.fields();
        let pid = it.next().unwrap().unwrap();
        assert_eq!(pid.value().unwrap_err(), err(18, ParseErrorKind::BadNumber));
        let odd = it.next().unwrap().unwrap();
        assert_eq!(
            odd.value().unwrap_err(),
            err(29, ParseErrorKind::BadHex),
            "the unpaired digit"
        );
        let bad = it.next().unwrap().unwrap();
        assert_eq!(bad.value().unwrap_err(), err(37, ParseErrorKind::BadHex));
        assert_eq!(&body[37..], b"G");
        assert_eq!(
            r.field(b"pid").unwrap().u32_dec().unwrap_err().kind,
            ParseErrorKind::BadNumber
        );
        let big = parse_body(1300, b"audit(1.0:1): pid=4294967296").unwrap();
        assert!(big.field(b"pid").unwrap().u32_dec().is_err());
    }

    #[test]
    fn unterminated_quote_ends_iteration() {
        let r = parse_body(1300, b"audit(1.0:1): a=1 comm=\"abc").unwrap();
        let mut it = r.fields();
        assert!(it.next().unwrap().is_ok());
        assert_eq!(
            it.next().unwrap().unwrap_err(),
            err(23, ParseErrorKind::UnterminatedQuote)
        );
        assert!(it.next().is_none());
    }

    #[test]
    fn words_without_equals_and_single_quotes() {
        let r = parse_body(
            1107,
            b"audit(1.0:1): pid=1 msg='avc:  denied  { read } for x=1' avc: denied { read } for  pid=2",
        )
        .unwrap();
        let f = fields(&r);
        assert_eq!(f[0], ("pid".into(), "1".into()));
        assert_eq!(
            f[1],
            ("msg".into(), "'avc:  denied  { read } for x=1'".into())
        );
        assert_eq!(f[2], ("pid".into(), "2".into()));
        assert_eq!(f.len(), 3);
    }

    /// A field as (key, raw value, value offset), or the offset of an unterminated quote.
    type Token = Result<(Vec<u8>, Vec<u8>, usize), usize>;

    /// The tokenizer as first written, byte by byte: the word-at-a-time scan must agree with it.
    fn reference_fields(text: &[u8]) -> Vec<Token> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            while text.get(pos) == Some(&b' ') {
                pos += 1;
            }
            if pos >= text.len() {
                return out;
            }
            let start = pos;
            let mut eq = start;
            while eq < text.len() && text[eq] != b'=' && text[eq] != b' ' {
                eq += 1;
            }
            if text.get(eq) != Some(&b'=') {
                pos = eq;
                continue;
            }
            let vstart = eq + 1;
            let end = match text.get(vstart) {
                Some(&q @ (b'"' | b'\'')) => {
                    match text[vstart + 1..].iter().position(|&b| b == q) {
                        Some(close) => vstart + 1 + close + 1,
                        None => {
                            out.push(Err(vstart));
                            return out;
                        }
                    }
                }
                _ => text[vstart..]
                    .iter()
                    .position(|&b| b == b' ')
                    .map_or(text.len(), |p| vstart + p),
            };
            out.push(Ok((
                text[start..eq].to_vec(),
                text[vstart..end].to_vec(),
                vstart,
            )));
            pos = end;
        }
    }

    #[test]
    fn word_scan_agrees_with_bytewise_tokenizer() {
        // Few symbols, so '=', spaces and quotes collide often; lengths cross the 8-byte words
        // and the hand-over to memchr.
        const ALPHABET: &[u8] = b"  ==\"'ab0\0\x1d\xff";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (rand() % 90) as usize;
            let run = 1 + (rand() % 40) as usize;
            let mut text = Vec::with_capacity(len);
            while text.len() < len {
                let b = ALPHABET[(rand() % ALPHABET.len() as u64) as usize];
                // Runs of one byte make long keys and values.
                let n = if rand() % 4 == 0 { run } else { 1 };
                text.extend(std::iter::repeat_n(b, n));
            }
            let mut tagged = fields_of(1300, &text);
            while let Some(Ok((tag, f))) = tagged.next_tagged() {
                assert_eq!(tag, key_tag(f.key), "{:?}", String::from_utf8_lossy(f.key));
            }
            let got: Vec<_> = fields_of(1300, &text)
                .map(|f| match f {
                    Ok(f) => Ok((f.key.to_vec(), f.raw.to_vec(), f.offset)),
                    Err(e) => Err(e.offset),
                })
                .collect();
            assert_eq!(
                got,
                reference_fields(&text),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn numbers_fast_and_slow_paths_agree() {
        let field = |raw: &'static [u8]| Field {
            rtype: types::SYSCALL,
            key: b"x",
            raw,
            offset: 0,
        };
        let cases: &[&[u8]] = &[
            b"0",
            b"7",
            b"4294967295",
            b"4294967296",
            b"00000000000000000001",
            b"9999999999999999999",
            b"18446744073709551615",
            b"18446744073709551616",
            b"1f",
            b"c000003e",
            b"ffffffffffffffff",
            b"0x1F",
            b"10000000000000000",
            b"12z",
            b"-1",
            b"(null)",
            b"?",
            b"",
        ];
        for &raw in cases {
            let f = field(raw);
            for radix in [8, 10, 16] {
                let slow = if f.is_absent() {
                    Ok(None)
                } else {
                    let digits = if radix == 16 {
                        raw.strip_prefix(b"0x")
                            .or_else(|| raw.strip_prefix(b"0X"))
                            .unwrap_or(raw)
                    } else {
                        raw
                    };
                    parse_radix(digits, radix).map(Some).ok_or(())
                };
                assert_eq!(f.num(radix).map_err(|_| ()), slow, "{raw:?} radix {radix}");
            }
            let want = f
                .num(10)
                .map_err(|_| ())
                .and_then(|v| v.map(u32::try_from).transpose().map_err(|_| ()));
            assert_eq!(f.u32_dec().map_err(|_| ()), want, "{raw:?}");
        }
    }

    #[test]
    fn header_numbers_of_every_length() {
        for digits in 1..=22 {
            let text: String = (0..digits)
                .map(|k| char::from(b'0' + (k * 7 % 10) as u8))
                .collect();
            let want = text.parse::<u64>().ok().filter(|_| digits <= 20);
            for tail in ["", ".5", "):"] {
                let s = format!("{text}{tail}");
                let mut i = 0;
                assert_eq!(digits_u64(s.as_bytes(), &mut i), want, "{s}");
                assert_eq!(i, digits, "{s}");
            }
        }
        assert!(all_digits(u64::from_le_bytes(*b"01234567")));
        for bad in [b"0123456:", b"/1234567", b"0123456\xff", b"012345 7"] {
            assert!(!all_digits(u64::from_le_bytes(*bad)), "{bad:?}");
        }
        assert_eq!(eight_digits(u64::from_le_bytes(*b"17958435")), 17_958_435);
    }

    #[test]
    fn usual_time_agrees_with_the_general_parser() {
        const ALPHABET: &[u8] = b"0123456789.:/ ";
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut fast = 0;
        for _ in 0..50_000 {
            // Mostly the usual shape, with a byte or two changed.
            let mut s = *b"1795843539.453:2057):";
            for _ in 0..rand(3) {
                s[rand(16)] = ALPHABET[rand(ALPHABET.len())];
            }
            if let Some(time) = usual_time(&s) {
                fast += 1;
                let mut i = 0;
                assert_eq!(
                    any_time(&s, &mut i, 0),
                    Ok(time),
                    "{:?}",
                    std::str::from_utf8(&s)
                );
                assert_eq!(i, 15);
            }
        }
        assert!(fast > 10_000, "{fast}");
        assert_eq!(usual_time(b"1795843539.45:"), None);
    }

    #[test]
    fn hex_words_agree_with_the_digit_table() {
        let reference = |hex: &[u8], room: usize| -> (Vec<u8>, Result<usize, BadHexDigit>) {
            let mut out = Vec::new();
            for (i, pair) in hex.chunks_exact(2).enumerate() {
                let (hi, lo) = (hex_digit(pair[0]), hex_digit(pair[1]));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    let bad = match hi {
                        None => BadHexDigit {
                            offset: 2 * i,
                            high: None,
                        },
                        Some(h) => BadHexDigit {
                            offset: 2 * i + 1,
                            high: Some(h),
                        },
                    };
                    return (out, Err(bad));
                };
                if i < room {
                    out.push(hi << 4 | lo);
                }
            }
            (out, Ok((hex.len() / 2).saturating_sub(room)))
        };
        // Every byte value in every lane of a word, next to valid digits.
        for b in 0..=255u8 {
            for at in 0..16 {
                let mut hex = *b"0123456789abcDEF";
                hex[at] = b;
                for room in [0, 3, 8, 100] {
                    let mut out = vec![7];
                    let got = decode_hex_pairs(&hex, &mut out, room);
                    let (want, want_result) = reference(&hex, room);
                    assert_eq!((&out[1..], got), (&want[..], want_result), "{b:#x} at {at}");
                }
            }
        }
        // Random runs of digits (mostly valid) of every length, with and without a cap.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"0123456789abcdefABCDEF0123456789g ";
        for len in 0..200 {
            let hex: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let pick = (seed % 1000) as usize;
                    if pick < 995 {
                        alphabet[pick % 22]
                    } else {
                        alphabet[22 + pick % 12]
                    }
                })
                .collect();
            for room in [usize::MAX, len / 3] {
                let mut out = Vec::new();
                let got = decode_hex_pairs(&hex, &mut out, room);
                assert_eq!(
                    (out, got),
                    reference(&hex, room),
                    "{:?}",
                    String::from_utf8_lossy(&hex)
                );
            }
        }
    }

    #[test]
    fn hex_decoding() {
        let mut out = Vec::new();
        decode_hex_into(b"6E6c0A78", &mut out).unwrap();
        assert_eq!(out, b"nl\nx");
        assert_eq!(decode_hex_into(b"abc", &mut out), Err(2));
        assert_eq!(decode_hex_into(b"zz", &mut out), Err(0));
    }
}
