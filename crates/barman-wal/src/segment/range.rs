//! Iterator over a range of segment names.

use std::iter::FusedIterator;

use super::{SegmentName, WalSegmentSize};

/// The segments from a first to a last name inclusive, on one timeline, in
/// order (Barman's `generate_segment_names`). Made by
/// [`SegmentName::range`].
///
/// [`Iterator::size_hint`] is exact (saturating at `usize::MAX`).
#[derive(Debug, Clone)]
pub struct SegmentRange {
    next: Option<SegmentName>,
    end: SegmentName,
    size: WalSegmentSize,
}

impl SegmentRange {
    /// `begin..=end`; empty if `end < begin` or the timelines differ.
    pub fn new(begin: SegmentName, end: SegmentName, size: WalSegmentSize) -> SegmentRange {
        let next = (begin.timeline == end.timeline && begin <= end).then_some(begin);
        SegmentRange { next, end, size }
    }

    /// How many names are left, as a `u64`.
    pub fn remaining(&self) -> u64 {
        let Some(mut cur) = self.next else { return 0 };
        let spl = self.size.segments_per_log();
        let mut extra = 0;
        if u64::from(cur.seg) > spl {
            // A name PostgreSQL never writes: it is followed by segment 0 of
            // the next log (see `checked_next`).
            extra = 1;
            match cur.checked_next(self.size) {
                Some(n) if n <= self.end => cur = n,
                _ => return 1,
            }
        }
        let index = |log: u32, seg: u64| u64::from(log) * (spl + 1) + seg;
        let last = index(self.end.log, u64::from(self.end.seg).min(spl));
        extra + last - index(cur.log, u64::from(cur.seg)) + 1
    }
}

impl Iterator for SegmentRange {
    type Item = SegmentName;

    fn next(&mut self) -> Option<SegmentName> {
        let cur = self.next?;
        self.next = cur.checked_next(self.size).filter(|n| *n <= self.end);
        Some(cur)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match usize::try_from(self.remaining()) {
            Ok(n) => (n, Some(n)),
            Err(_) => (usize::MAX, None),
        }
    }
}

impl FusedIterator for SegmentRange {}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> SegmentName {
        s.parse().unwrap()
    }

    fn names(begin: &str, end: &str, size: WalSegmentSize) -> Vec<String> {
        SegmentName::range(&name(begin), &name(end), size)
            .map(|n| n.to_string())
            .collect()
    }

    #[test]
    fn crosses_log_boundary() {
        let got = names(
            "0000000100000000000000FE",
            "000000010000000100000001",
            WalSegmentSize::DEFAULT,
        );
        assert_eq!(
            got,
            [
                "0000000100000000000000FE",
                "0000000100000000000000FF",
                "000000010000000100000000",
                "000000010000000100000001",
            ]
        );
    }

    #[test]
    fn single_and_empty() {
        let s = WalSegmentSize::DEFAULT;
        assert_eq!(
            names("000000010000000000000003", "000000010000000000000003", s).len(),
            1
        );
        assert!(names("000000010000000000000004", "000000010000000000000003", s).is_empty());
        assert!(names("000000010000000000000001", "000000020000000000000003", s).is_empty());
    }

    #[test]
    fn remaining_is_exact() {
        let s = WalSegmentSize::DEFAULT;
        let mut r = SegmentName::range(
            &name("000000010000000000000000"),
            &name("000000010000000200000000"),
            s,
        );
        assert_eq!(r.remaining(), 513);
        assert_eq!(r.size_hint(), (513, Some(513)));
        r.next();
        assert_eq!(r.remaining(), 512);
        assert_eq!(r.count(), 512);
    }

    #[test]
    fn out_of_range_names_counted_like_iteration() {
        let s = WalSegmentSize::DEFAULT;
        for (b, e) in [
            ("000000010000000000000100", "000000010000000100000001"),
            ("000000010000000000000001", "000000010000000000000300"),
            ("000000010000000000000300", "000000010000000000000400"),
        ] {
            let r = SegmentName::range(&name(b), &name(e), s);
            assert_eq!(r.remaining(), r.clone().count() as u64, "{b}..={e}");
        }
    }

    #[test]
    fn stops_at_end_of_address_space() {
        let s = WalSegmentSize::new(1 << 30).unwrap();
        let got = names("00000001FFFFFFFF00000002", "00000001FFFFFFFFFFFFFFFF", s);
        assert_eq!(
            got,
            ["00000001FFFFFFFF00000002", "00000001FFFFFFFF00000003"]
        );
    }
}
