//! Line sources: a file (plain or gzip, told apart by magic bytes), standard input, and a `tail -F`-style follower that survives rotation.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

/// The result of asking a source for its next line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Poll {
    /// A line is in the buffer (without its line ending); its 1-based number.
    Line(u64),
    /// Nothing yet (follow mode only): ask again later.
    Idle,
    /// The source is exhausted.
    End,
}

pub(crate) trait LineSource: Send {
    fn poll_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Poll>;
    /// The file being read, as reported in events.
    fn file(&self) -> &Arc<str>;
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

fn strip_eol(buf: &mut Vec<u8>) {
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
}

/// A finite reader: a file, a gzip file or standard input.
pub(crate) struct Finite {
    reader: Box<dyn BufRead + Send>,
    file: Arc<str>,
    line: u64,
}

impl Finite {
    pub fn stdin() -> Finite {
        Finite::from_reader(Box::new(io::stdin()), Arc::from("-"))
    }

    pub fn from_reader(r: Box<dyn Read + Send>, file: Arc<str>) -> Finite {
        let mut reader = BufReader::with_capacity(256 * 1024, r);
        // Gzip is recognised by its magic bytes (RFC 1952 §2.3.1), not the
        // name: rotated logs are compressed under many naming schemes.
        let gz = matches!(reader.fill_buf(), Ok(b) if b.starts_with(&GZIP_MAGIC));
        let reader: Box<dyn BufRead + Send> = if gz {
            Box::new(BufReader::with_capacity(
                256 * 1024,
                MultiGzDecoder::new(reader),
            ))
        } else {
            Box::new(reader)
        };
        Finite {
            reader,
            file,
            line: 0,
        }
    }

    pub fn open(path: &Path) -> io::Result<Finite> {
        let f = File::open(path)?;
        Ok(Finite::from_reader(
            Box::new(f),
            Arc::from(path.display().to_string()),
        ))
    }
}

impl LineSource for Finite {
    fn poll_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Poll> {
        buf.clear();
        if self.reader.read_until(b'\n', buf)? == 0 {
            return Ok(Poll::End);
        }
        strip_eol(buf);
        self.line += 1;
        Ok(Poll::Line(self.line))
    }

    fn file(&self) -> &Arc<str> {
        &self.file
    }
}

fn is_gzip(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == GZIP_MAGIC)
}

/// The identity of a file: (device, inode) on Unix, so a rename followed by
/// a new file at the same path is seen as a rotation.
#[cfg(unix)]
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn identity(_m: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// Follows a path like `tail -F`: reads what is there, then waits for more;
/// when the path is renamed away and recreated, it finishes the old file
/// first and then reads the new one from its start; when the file shrinks
/// (truncation), it starts again from the beginning. A partial last line
/// is held until its newline arrives (or the file is rotated away).
pub(crate) struct Follower {
    path: PathBuf,
    file_label: Arc<str>,
    reader: Option<BufReader<File>>,
    id: (u64, u64),
    pos: u64,
    line: u64,
    partial: Vec<u8>,
    /// The path now names another file; the old one is being drained.
    rotated: bool,
}

impl Follower {
    pub fn new(path: &Path) -> Follower {
        Follower {
            path: path.to_path_buf(),
            file_label: Arc::from(path.display().to_string()),
            reader: None,
            id: (0, 0),
            pos: 0,
            line: 0,
            partial: Vec::new(),
            rotated: false,
        }
    }

    fn try_open(&mut self) -> io::Result<bool> {
        match File::open(&self.path) {
            Ok(f) => {
                self.id = identity(&f.metadata()?);
                self.reader = Some(BufReader::with_capacity(256 * 1024, f));
                self.pos = 0;
                self.line = 0;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Emits the held partial line, if any.
    fn flush_partial(&mut self, buf: &mut Vec<u8>) -> Option<Poll> {
        if self.partial.is_empty() {
            return None;
        }
        buf.clear();
        buf.append(&mut self.partial);
        strip_eol(buf);
        self.line += 1;
        Some(Poll::Line(self.line))
    }
}

impl LineSource for Follower {
    fn poll_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Poll> {
        if self.reader.is_none() && !self.try_open()? {
            return Ok(Poll::Idle);
        }
        loop {
            let Some(reader) = self.reader.as_mut() else {
                return Ok(Poll::Idle);
            };
            let n = reader.read_until(b'\n', &mut self.partial)?;
            self.pos += n as u64;
            if self.partial.last() == Some(&b'\n') {
                buf.clear();
                buf.append(&mut self.partial);
                strip_eol(buf);
                self.line += 1;
                return Ok(Poll::Line(self.line));
            }
            if self.rotated {
                // The old file has been read to its end once more after the
                // rotation was seen, so whatever the writer appended before
                // renaming it is in: its last partial line is complete.
                if let Some(p) = self.flush_partial(buf) {
                    return Ok(p);
                }
                self.rotated = false;
                self.reader = None;
                if !self.try_open()? {
                    return Ok(Poll::Idle);
                }
                continue;
            }
            // At the end of what was written so far: has the path moved on?
            return match std::fs::metadata(&self.path) {
                Ok(m) if identity(&m) != self.id => {
                    self.rotated = true;
                    continue;
                }
                Ok(m) if m.len() < self.pos => {
                    // Truncated in place (copytruncate): start over.
                    if let Some(p) = self.flush_partial(buf) {
                        return Ok(p);
                    }
                    if let Some(r) = self.reader.as_mut() {
                        r.seek(SeekFrom::Start(0))?;
                    }
                    self.pos = 0;
                    self.line = 0;
                    continue;
                }
                _ => Ok(Poll::Idle),
            };
        }
    }

    fn file(&self) -> &Arc<str> {
        &self.file_label
    }
}

/// Opens `path` as a source: followed when asked and the file is not gzip
/// (a compressed file is a finished, rotated log).
pub(crate) fn open_path(path: &Path, follow: bool) -> io::Result<Box<dyn LineSource>> {
    if follow && !is_gzip(path) {
        Ok(Box::new(Follower::new(path)))
    } else {
        Ok(Box::new(Finite::open(path)?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;

    fn lines(mut src: impl LineSource) -> Vec<(u64, String)> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Poll::Line(n) = src.poll_line(&mut buf).unwrap() {
            out.push((n, String::from_utf8(buf.clone()).unwrap()));
        }
        out
    }

    #[test]
    fn gzip_is_recognised_by_its_bytes_on_any_reader() {
        let text = "one\r\ntwo\n\nlast without newline";
        let want = vec![
            (1, "one".to_string()),
            (2, "two".to_string()),
            (3, String::new()),
            (4, "last without newline".to_string()),
        ];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        // Standard input is such a reader: `zcat`-free pipelines work.
        for bytes in [text.as_bytes().to_vec(), gz] {
            let src = Finite::from_reader(Box::new(std::io::Cursor::new(bytes)), Arc::from("-"));
            assert_eq!(lines(src), want);
        }
    }

    #[test]
    fn follower_holds_a_partial_line_until_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut f = File::create(&path).unwrap();
        let mut src = Follower::new(&path);
        let mut buf = Vec::new();
        f.write_all(b"abc").unwrap();
        assert_eq!(src.poll_line(&mut buf).unwrap(), Poll::Idle);
        f.write_all(b"def\nx").unwrap();
        assert_eq!(src.poll_line(&mut buf).unwrap(), Poll::Line(1));
        assert_eq!(buf, b"abcdef");
        assert_eq!(src.poll_line(&mut buf).unwrap(), Poll::Idle);
        // Rotated away: the partial line is complete.
        std::fs::rename(&path, dir.path().join("x.log.1")).unwrap();
        File::create(&path).unwrap().write_all(b"new\n").unwrap();
        assert_eq!(src.poll_line(&mut buf).unwrap(), Poll::Line(2));
        assert_eq!(buf, b"x");
        assert_eq!(src.poll_line(&mut buf).unwrap(), Poll::Line(1));
        assert_eq!(buf, b"new");
        assert_eq!(src.poll_line(&mut buf).unwrap(), Poll::Idle);
    }
}
