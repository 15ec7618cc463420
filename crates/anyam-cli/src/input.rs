//! Reading STIX objects from a file or a pipe without holding the input in
//! memory: each object's text is handed on as soon as it has been read, so
//! an import of any size needs memory for a few batches only.
//!
//! Accepted shapes (the same as `anyam import` always took):
//! - a bundle or TAXII envelope: one JSON object with an `objects` list,
//!   minified or not; its objects are numbered from 1;
//! - a JSON array of objects, numbered from 1;
//! - one bare object (item 1);
//! - JSON lines: one object per line, each numbered by its line, blank
//!   lines skipped. Anything that is not one of the shapes above is read
//!   as JSON lines, so that each bad line gets its own report.
//!
//! Each object's text is passed on exactly as it was in the input.

use std::cell::Cell;
use std::fmt;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

use anyhow::{Context, Result, bail};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Text of the first document kept at most this long when it is not a
/// container (an object of this size would be refused by validation
/// anyway; this only bounds what a malformed input can make us buffer).
const MAX_BARE_OBJECT: usize = 256 << 20;

/// Read objects from `input`, calling `each(item, text)` for each one in
/// order. An error from `each` stops the reading and is returned as is.
/// `consumed` is kept up to date with the bytes read so far (for a
/// progress bar).
pub(crate) fn read_objects<R: Read>(
    input: R,
    consumed: &dyn Fn(u64),
    mut each: impl FnMut(usize, String) -> Result<()>,
) -> Result<()> {
    let capture = Rc::new(Cell::new(true));
    let tap = Tap {
        inner: input,
        capture: capture.clone(),
        captured: Vec::new(),
        read: 0,
        consumed,
    };
    let mut src = Source {
        inner: io::BufReader::with_capacity(1 << 16, tap),
        capture,
        line: 1,
        lead: 0,
    };
    // Leading whitespace (and a byte order mark) tells nothing yet.
    let first = loop {
        let buf = src.inner.fill_buf().context("reading the input")?;
        let Some(&b) = buf.first() else {
            return Ok(()); // empty input: nothing to import
        };
        if buf.starts_with(b"\xEF\xBB\xBF") {
            src.skip(3);
            src.lead += 3;
        } else if b.is_ascii_whitespace() {
            if b == b'\n' {
                src.line += 1;
            }
            src.skip(1);
            src.lead += 1;
        } else {
            break b;
        }
    };
    match first {
        b'[' => read_array(&mut src, &mut each),
        b'{' => read_document(&mut src, &mut each),
        _ => read_lines(&mut src, &mut each),
    }
}

/// The raw input as the buffer below reads it in large blocks: it counts
/// the bytes and, while `capture` is set, keeps them (the text of the
/// first document, which may turn out to be one bare object).
struct Tap<'a, R> {
    inner: R,
    capture: Rc<Cell<bool>>,
    captured: Vec<u8>,
    read: u64,
    consumed: &'a dyn Fn(u64),
}

impl<R: Read> Read for Tap<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        if self.capture.get() {
            if self.captured.len() + n > MAX_BARE_OBJECT {
                return Err(io::Error::other(format!(
                    "the input's first JSON document is larger than {} MiB and has no `objects` list",
                    MAX_BARE_OBJECT >> 20
                )));
            }
            self.captured.extend_from_slice(&out[..n]);
        }
        self.read += n as u64;
        (self.consumed)(self.read);
        Ok(n)
    }
}

/// The buffered input, and where it is: the line (for JSON lines) and how
/// many bytes came before the first document.
struct Source<'a, R> {
    inner: io::BufReader<Tap<'a, R>>,
    capture: Rc<Cell<bool>>,
    line: usize,
    lead: usize,
}

impl<R: Read> Source<'_, R> {
    fn skip(&mut self, n: usize) {
        self.inner.consume(n);
    }

    /// The text of the first document consumed so far, and stop keeping
    /// it. Only meaningful while it was kept from the start.
    fn take_captured(&mut self) -> Vec<u8> {
        self.capture.set(false);
        let unread = self.inner.buffer().len();
        let mut kept = std::mem::take(&mut self.inner.get_mut().captured);
        kept.truncate(kept.len().saturating_sub(unread));
        kept.drain(..self.lead.min(kept.len()));
        kept
    }
}

/// `each` called from inside a visitor: its error is kept here and the
/// parse is stopped with a marker error.
struct Sink<'e, F> {
    each: &'e mut F,
    next: usize,
    failed: Option<anyhow::Error>,
}

impl<F: FnMut(usize, String) -> Result<()>> Sink<'_, F> {
    fn take<'de, A: SeqAccess<'de>>(&mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            self.next += 1;
            let text: Box<str> = raw.into();
            if let Err(e) = (self.each)(self.next, text.into_string()) {
                self.failed = Some(e);
                return Err(de::Error::custom(STOPPED));
            }
        }
        Ok(())
    }

    /// The error to return for a parse that failed: the one `each` gave,
    /// or the parse error with what was being read.
    fn error(&mut self, e: serde_json::Error, what: &str) -> anyhow::Error {
        match self.failed.take() {
            Some(mine) => mine,
            None => anyhow::Error::new(e).context(what.to_string()),
        }
    }
}

const STOPPED: &str = "stopped";

/// A JSON array of objects.
fn read_array<R: Read, F: FnMut(usize, String) -> Result<()>>(
    src: &mut Source<'_, R>,
    each: &mut F,
) -> Result<()> {
    src.capture.set(false);
    let mut sink = Sink {
        each,
        next: 0,
        failed: None,
    };
    let mut de = serde_json::Deserializer::from_reader(&mut src.inner);
    let parsed =
        de::Deserializer::deserialize_seq(&mut de, ArrayOf(&mut sink)).and_then(|()| de.end());
    parsed.map_err(|e| sink.error(e, "the input is not a JSON array of objects"))
}

struct ArrayOf<'s, 'e, F>(&'s mut Sink<'e, F>);

impl<'de, F: FnMut(usize, String) -> Result<()>> Visitor<'de> for ArrayOf<'_, '_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of STIX objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.0.take(seq)
    }
}

impl<'de, F: FnMut(usize, String) -> Result<()>> DeserializeSeed<'de> for ArrayOf<'_, '_, F> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

/// What the first document turned out to be.
#[derive(Default)]
struct Document {
    /// It had an `objects` list (already handed on).
    container: bool,
    bundle: bool,
}

/// One JSON object first: a bundle or envelope, one bare object, or the
/// first line of JSON lines.
fn read_document<R: Read, F: FnMut(usize, String) -> Result<()>>(
    src: &mut Source<'_, R>,
    each: &mut F,
) -> Result<()> {
    let first_line = src.line;
    let flag = src.capture.clone();
    let mut sink = Sink {
        each: &mut *each,
        next: 0,
        failed: None,
    };
    let mut de = serde_json::Deserializer::from_reader(&mut src.inner);
    let doc = de::Deserializer::deserialize_map(
        &mut de,
        DocumentVisitor {
            sink: &mut sink,
            capture: flag,
        },
    );
    let doc = match doc {
        Ok(doc) => doc,
        // Stopped by `each`, or broken inside a container, whose objects
        // cannot be told apart any more.
        Err(e) if sink.failed.is_some() || !src.capture.get() => {
            return Err(sink.error(e, "the input is not a JSON object"));
        }
        Err(_) => {
            // Not one JSON object: JSON lines, from the first line on.
            drop(de);
            return read_lines_from(src, first_line, each);
        }
    };
    drop(de);
    src.capture.set(false);
    if doc.container || doc.bundle {
        // A bundle without objects has nothing to import.
        if !rest_is_blank(src)? {
            bail!("the input continues after its bundle's closing brace (one bundle per input)");
        }
        return Ok(());
    }
    // One bare object: alone, or the first of JSON lines. The rest of its
    // last line belongs to it (something after it there makes that line
    // one bad item, as JSON lines has it).
    let kept = src.take_captured();
    src.line = first_line + kept.iter().filter(|&&b| b == b'\n').count();
    let mut text = String::from_utf8(kept).context("the input is not UTF-8")?;
    read_line(src, &mut text)?;
    each(first_line, text.trim().to_string())?;
    src.line += 1;
    read_lines(src, each)
}

/// Whether nothing but whitespace is left.
fn rest_is_blank<R: Read>(src: &mut Source<'_, R>) -> Result<bool> {
    loop {
        let buf = src.inner.fill_buf().context("reading the input")?;
        if buf.is_empty() {
            return Ok(true);
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(_) => return Ok(false),
            None => {
                let n = buf.len();
                src.skip(n);
            }
        }
    }
}

struct DocumentVisitor<'s, 'e, F> {
    sink: &'s mut Sink<'e, F>,
    capture: Rc<Cell<bool>>,
}

impl<'de, F: FnMut(usize, String) -> Result<()>> Visitor<'de> for DocumentVisitor<'_, '_, F> {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a bundle, a TAXII envelope or a STIX object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        let mut doc = Document::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "objects" => {
                    if doc.container {
                        return Err(de::Error::duplicate_field("objects"));
                    }
                    // The objects go on one by one; the document's own
                    // text is no longer needed.
                    self.capture.set(false);
                    map.next_value_seed(ArrayOf(&mut *self.sink))?;
                    doc.container = true;
                }
                "type" => {
                    let t: Box<RawValue> = map.next_value()?;
                    doc.bundle = t.get() == "\"bundle\"";
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(doc)
    }
}

/// JSON lines from the current position, which is the start of line
/// `src.line`.
fn read_lines<R: Read, F: FnMut(usize, String) -> Result<()>>(
    src: &mut Source<'_, R>,
    each: &mut F,
) -> Result<()> {
    src.capture.set(false);
    let mut line = String::new();
    loop {
        line.clear();
        let n = read_line(src, &mut line)?;
        if n == 0 {
            return Ok(());
        }
        let at = src.line;
        src.line += 1;
        let t = line.trim();
        if !t.is_empty() {
            each(at, t.to_string())?;
        }
    }
}

/// JSON lines again from the start of the input, after the first document
/// turned out not to be one JSON object: its kept text is read first.
fn read_lines_from<R: Read, F: FnMut(usize, String) -> Result<()>>(
    src: &mut Source<'_, R>,
    first_line: usize,
    each: &mut F,
) -> Result<()> {
    let kept = src.take_captured();
    let mut at = first_line;
    // The kept text ends part way through a line: its last piece is
    // completed by the rest of that line from the input.
    let mut pieces = kept.split(|&b| b == b'\n').peekable();
    while let Some(piece) = pieces.next() {
        let mut text = String::from_utf8_lossy(piece).into_owned();
        if pieces.peek().is_none() {
            read_line(src, &mut text)?;
        }
        let t = text.trim();
        if !t.is_empty() {
            each(at, t.to_string())?;
        }
        at += 1;
    }
    src.line = at;
    read_lines(src, each)
}

/// One line (without its newline) appended to `out`; bytes read, 0 at the
/// end of the input. A line that is not UTF-8 is passed on with its bad
/// bytes replaced, so that validation reports it as the line it is.
fn read_line<R: Read>(src: &mut Source<'_, R>, out: &mut String) -> Result<usize> {
    let mut bytes = Vec::new();
    let n = src
        .inner
        .read_until(b'\n', &mut bytes)
        .context("reading the input")?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    match String::from_utf8(bytes) {
        Ok(s) => out.push_str(&s),
        Err(e) => out.push_str(&String::from_utf8_lossy(e.as_bytes())),
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &str) -> Result<Vec<(usize, String)>> {
        let mut out = Vec::new();
        read_objects(input.as_bytes(), &|_| {}, |i, t| {
            out.push((i, t));
            Ok(())
        })?;
        Ok(out)
    }

    fn items(input: &str) -> Vec<(usize, String)> {
        read(input).unwrap_or_else(|e| panic!("{input:?}: {e:#}"))
    }

    #[test]
    fn bundles_and_envelopes_give_their_objects_verbatim() {
        let pretty = "{\n  \"type\": \"bundle\",\n  \"id\": \"bundle--1\",\n  \"objects\": [\n    {\"a\": 1,  \"b\": [1, 2]},\n    {\"c\": \"\\u00e9\"}\n  ]\n}\n";
        assert_eq!(
            items(pretty),
            vec![
                (1, "{\"a\": 1,  \"b\": [1, 2]}".to_string()),
                (2, "{\"c\": \"\\u00e9\"}".to_string())
            ]
        );
        // Objects before other members, and an envelope without a type.
        assert_eq!(
            items("{\"objects\":[{\"x\":1}],\"more\":false}"),
            vec![(1, "{\"x\":1}".to_string())]
        );
        assert!(items("{\"type\":\"bundle\",\"id\":\"bundle--1\"}").is_empty());
        assert!(items("{\"type\":\"bundle\",\"objects\":[]}").is_empty());
    }

    #[test]
    fn arrays_bare_objects_and_lines() {
        assert_eq!(
            items(" [ {\"a\":1} , {\"b\":2} ] \n"),
            vec![(1, "{\"a\":1}".to_string()), (2, "{\"b\":2}".to_string())]
        );
        assert_eq!(
            items("\u{feff}\n {\"type\": \"indicator\"}\n\n"),
            vec![(2, "{\"type\": \"indicator\"}".to_string())]
        );
        assert_eq!(
            items("{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}"),
            vec![
                (1, "{\"a\":1}".to_string()),
                (3, "{\"b\":2}".to_string()),
                (4, "{\"c\":3}".to_string())
            ]
        );
        assert!(items("").is_empty());
        assert!(items(" \n\t").is_empty());
    }

    #[test]
    fn bad_lines_are_items_of_their_own() {
        // A first line that is not JSON makes the input JSON lines.
        assert_eq!(
            items("{\"a\":\n{\"b\":2}\nnot json\n"),
            vec![
                (1, "{\"a\":".to_string()),
                (2, "{\"b\":2}".to_string()),
                (3, "not json".to_string())
            ]
        );
        assert_eq!(
            items("garbage\n{\"b\":2}"),
            vec![(1, "garbage".to_string()), (2, "{\"b\":2}".to_string())]
        );
        // A broken first document spread over lines: each line is reported.
        assert_eq!(
            items("{\"a\": 1,\n \"b\": }\n{\"c\":3}\n"),
            vec![
                (1, "{\"a\": 1,".to_string()),
                (2, "\"b\": }".to_string()),
                (3, "{\"c\":3}".to_string())
            ]
        );
    }

    #[test]
    fn broken_containers_are_refused_with_where() {
        let e = read("{\"type\":\"bundle\",\"objects\":[{\"a\":1},{\"b\":]}").unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("not a JSON object") && msg.contains("column"),
            "{msg}"
        );
        let e = read("[{\"a\":1},").unwrap_err();
        assert!(format!("{e:#}").contains("not a JSON array"), "{e:#}");
        let e = read("{\"objects\":[{\"a\":1}]}\n{\"objects\":[]}").unwrap_err();
        assert!(format!("{e:#}").contains("one bundle per input"), "{e:#}");
        let e = read("{\"objects\":[],\"objects\":[]}").unwrap_err();
        assert!(format!("{e:#}").contains("duplicate field"), "{e:#}");
    }

    #[test]
    fn an_error_from_the_consumer_stops_reading() {
        let mut seen = 0;
        let e = read_objects(
            "[{\"a\":1},{\"b\":2},{\"c\":3}]".as_bytes(),
            &|_| {},
            |_, _| {
                seen += 1;
                if seen == 2 {
                    bail!("writer stopped");
                }
                Ok(())
            },
        )
        .unwrap_err();
        assert_eq!(format!("{e:#}"), "writer stopped");
        assert_eq!(seen, 2);
    }

    #[test]
    fn large_inputs_stream_in_small_memory() {
        // 20,000 objects read through a reader that counts what it gives:
        // each object is handed on long before the input ends.
        let mut text = String::from("{\"type\":\"bundle\",\"objects\":[");
        for i in 0..20_000 {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(100)));
        }
        text.push_str("]}");
        let total = text.len() as u64;
        let read_at_first = Cell::new(None);
        let read_so_far = Cell::new(0u64);
        let mut n = 0;
        read_objects(text.as_bytes(), &|r| read_so_far.set(r), |_, t| {
            if read_at_first.get().is_none() {
                read_at_first.set(Some(read_so_far.get()));
            }
            assert!(t.starts_with("{\"n\":"));
            n += 1;
            Ok(())
        })
        .expect("bundle");
        assert_eq!(n, 20_000);
        assert!(read_at_first.get().is_some_and(|r| r < total / 2));
    }
}
