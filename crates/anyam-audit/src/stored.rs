//! How a leaf is kept in the `entries` table: as it is, or, from
//! [`COMPRESS_FROM`] bytes on, as one zstd frame of it.
//!
//! The leaf of a response lists every object version it released (about
//! 10 KB for a page of 100), so a node under a read load wrote about
//! 35 KB to disk per request for its audit log, and kept 10 KB. Ids and
//! timestamps compress to about a third. Only the stored bytes change:
//! the leaf, its hash, the tree and everything exported or verified are
//! over the canonical JSON, which a reader gets back exactly.
//!
//! The two forms cannot be confused: canonical JSON of an entry starts
//! with `{`, a zstd frame with its magic number.

use std::borrow::Cow;

/// Leaves at least this long are stored compressed; shorter ones (most
/// entries: denials, receipts of a few objects, administration) gain too
/// little and stay readable as they are.
pub const COMPRESS_FROM: usize = 1024;

/// zstd's fastest levels compress these leaves almost as well as its
/// default (3.7 KB against 3.8 KB for a page of 100) at a fraction of the
/// time.
const LEVEL: i32 = 1;

/// The first bytes of a zstd frame (RFC 8878 §3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Largest leaf a stored frame may expand to: a bound against a frame
/// edited to claim any size.
const MAX_LEAF: u64 = 64 << 20;

/// What to store for `leaf`.
pub(crate) fn store_form(leaf: &[u8]) -> Cow<'_, [u8]> {
    if leaf.len() < COMPRESS_FROM {
        return Cow::Borrowed(leaf);
    }
    let frame = COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(LEVEL).ok();
        }
        c.as_mut().map(|c| c.compress(leaf))
    });
    match frame {
        Some(Ok(frame)) if frame.len() < leaf.len() => Cow::Owned(frame),
        // Compressing cannot fail on a buffer in memory; should it, or
        // should it not help, the leaf is kept as it is.
        _ => Cow::Borrowed(leaf),
    }
}

thread_local! {
    /// One compression context per appending thread (in the node, the
    /// appender's writer): making one for every leaf allocated and cleared
    /// its tables each time, which cost more than the compression.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// The leaf that `stored` keeps; an error says what is wrong with a frame
/// that does not expand to a leaf.
pub(crate) fn leaf_of(stored: Vec<u8>) -> Result<Vec<u8>, String> {
    if !stored.starts_with(&ZSTD_MAGIC) {
        return Ok(stored);
    }
    let size = match zstd::zstd_safe::get_frame_content_size(&stored) {
        Ok(Some(n)) if n <= MAX_LEAF => n,
        Ok(Some(n)) => return Err(format!("the stored leaf claims {n} bytes")),
        Ok(None) | Err(_) => {
            return Err("the stored leaf is not a zstd frame with its size".into());
        }
    };
    // Within MAX_LEAF, so it fits a usize.
    let size = usize::try_from(size).map_err(|_| "the stored leaf is too large".to_owned())?;
    let leaf = zstd::bulk::decompress(&stored, size)
        .map_err(|e| format!("the stored leaf does not decompress: {e}"))?;
    if leaf.len() != size {
        return Err(format!(
            "the stored leaf expands to {} bytes, not the {size} its frame says",
            leaf.len()
        ));
    }
    Ok(leaf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_leaves_stay_and_long_ones_come_back_exactly() {
        let short = br#"{"actor":"a","seq":1}"#;
        assert!(matches!(store_form(short), Cow::Borrowed(_)));
        assert_eq!(leaf_of(short.to_vec()).unwrap(), short);

        let long: Vec<u8> = format!(
            r#"{{"objects":[{}]}}"#,
            (0..200)
                .map(|i| format!(r#"{{"id":"indicator--{i:08}-0000-4000-8000-000000000000"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        )
        .into_bytes();
        let stored = store_form(&long).into_owned();
        assert!(stored.starts_with(&ZSTD_MAGIC));
        assert!(
            stored.len() * 3 < long.len(),
            "{} of {}",
            stored.len(),
            long.len()
        );
        assert_eq!(leaf_of(stored).unwrap(), long);
    }

    #[test]
    fn a_damaged_frame_is_an_error_not_a_leaf() {
        let long = vec![b'x'; 4096];
        let stored = store_form(&long).into_owned();
        // Cut short.
        assert!(leaf_of(stored[..stored.len() - 3].to_vec()).is_err());
        // Only the magic.
        assert!(leaf_of(ZSTD_MAGIC.to_vec()).is_err());
    }
}
