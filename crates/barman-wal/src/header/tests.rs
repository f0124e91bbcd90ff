use std::io::Cursor;

use super::*;

const SYSID: u64 = 7_412_345_678_901_234_567;

/// Builds a 40-byte long page header the way PostgreSQL lays it out.
fn header_bytes(magic: u16, info: u16, tli: u32, pageaddr: u64, seg_size: u32) -> [u8; 40] {
    let mut b = [0u8; 40];
    b[0..2].copy_from_slice(&magic.to_le_bytes());
    b[2..4].copy_from_slice(&info.to_le_bytes());
    b[4..8].copy_from_slice(&tli.to_le_bytes());
    b[8..16].copy_from_slice(&pageaddr.to_le_bytes());
    b[16..20].copy_from_slice(&0x11u32.to_le_bytes());
    b[20..24].copy_from_slice(&[0xAA; 4]); // padding: ignored
    b[24..32].copy_from_slice(&SYSID.to_le_bytes());
    b[32..36].copy_from_slice(&seg_size.to_le_bytes());
    b[36..40].copy_from_slice(&8192u32.to_le_bytes());
    b
}

fn good() -> [u8; 40] {
    header_bytes(0xD110, XLP_LONG_HEADER, 1, 0x0300_0000, 16 << 20)
}

fn name(s: &str) -> SegmentName {
    s.parse().unwrap()
}

fn field_of(err: &Error) -> &'static str {
    match err {
        Error::InvalidHeader { field, .. } => field,
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn parses_every_field() {
    let h = LongPageHeader::parse(&good()).unwrap();
    assert_eq!(
        h,
        LongPageHeader {
            magic: 0xD110,
            info: XLP_LONG_HEADER,
            timeline: TimelineId::ONE,
            page_address: Lsn(0x0300_0000),
            remaining_length: 0x11,
            system_identifier: SYSID,
            segment_size: WalSegmentSize::DEFAULT,
            block_size: 8192,
        }
    );
    assert_eq!(h.segment_name(), name("000000010000000000000003"));
    assert!(h.is_long());
}

#[test]
fn parse_ignores_bytes_after_the_header() {
    let mut page = vec![0u8; 8192];
    page[..40].copy_from_slice(&good());
    assert_eq!(
        LongPageHeader::parse(&page).unwrap(),
        LongPageHeader::parse(&good()).unwrap()
    );
}

#[test]
fn read_from_consumes_exactly_40_bytes() {
    let mut data = good().to_vec();
    data.extend_from_slice(b"rest");
    let mut cursor = Cursor::new(data);
    let h = LongPageHeader::read_from(&mut cursor).unwrap();
    assert_eq!(h.system_identifier, SYSID);
    assert_eq!(cursor.position(), 40);
}

#[test]
fn short_input_is_refused() {
    let err = LongPageHeader::parse(&good()[..39]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::HeaderTooShort {
                expected: 40,
                found: 39
            }
        ),
        "{err:?}"
    );
    let err = LongPageHeader::read_from(&mut Cursor::new(vec![0u8; 10])).unwrap_err();
    assert!(matches!(err, Error::HeaderRead { .. }), "{err:?}");
}

#[test]
fn unrepresentable_fields_fail_parse() {
    let err = LongPageHeader::parse(&header_bytes(0xD110, 2, 0, 0, 16 << 20)).unwrap_err();
    assert_eq!(field_of(&err), "xlp_tli");
    let err = LongPageHeader::parse(&header_bytes(0xD110, 2, 1, 0, 3 << 20)).unwrap_err();
    assert_eq!(field_of(&err), "xlp_seg_size");
    assert!(err.to_string().contains("3145728"), "{err}");
}

#[test]
fn known_magics() {
    for (magic, major) in [
        (0xD106, 13),
        (0xD10D, 14),
        (0xD110, 15),
        (0xD113, 16),
        (0xD116, 17),
        (0xD118, 18),
    ] {
        let h = LongPageHeader::parse(&header_bytes(magic, 2, 1, 0, 16 << 20)).unwrap();
        assert_eq!(h.pg_major(), Some(major));
        h.validate(&HeaderExpectations::default()).unwrap();
    }
    let h = LongPageHeader::parse(&header_bytes(0xD101, 2, 1, 0, 16 << 20)).unwrap();
    assert_eq!(h.pg_major(), None);
    let err = h.validate(&HeaderExpectations::default()).unwrap_err();
    assert_eq!(field_of(&err), "xlp_magic");
    assert!(err.to_string().contains("0xD101"), "{err}");
}

#[test]
fn validate_accepts_matching_expectations() {
    let h = LongPageHeader::parse(&good()).unwrap();
    h.validate(&HeaderExpectations {
        system_identifier: Some(SYSID),
        segment_size: Some(WalSegmentSize::DEFAULT),
        name: Some(name("000000010000000000000003")),
    })
    .unwrap();
}

#[test]
fn first_segment_of_a_new_timeline_keeps_the_parent_timeline() {
    // Timeline 2 forked inside segment 3: PostgreSQL copied timeline 1's
    // segment, so the header says timeline 1 while the file is named for 2.
    let h = LongPageHeader::parse(&good()).unwrap();
    h.validate(&HeaderExpectations {
        name: Some(name("000000020000000000000003")),
        ..Default::default()
    })
    .unwrap();
}

#[test]
fn validate_refuses_each_mismatch() {
    let check = |bytes: [u8; 40], expected: HeaderExpectations, field: &str, needles: &[&str]| {
        let err = LongPageHeader::parse(&bytes)
            .unwrap()
            .validate(&expected)
            .unwrap_err();
        assert_eq!(field_of(&err), field, "{err}");
        let msg = err.to_string();
        for needle in needles {
            assert!(msg.contains(needle), "{msg} should contain {needle}");
        }
    };
    let none = HeaderExpectations::default();
    // Short header (a page in the middle of a segment).
    check(
        header_bytes(0xD110, 0x0001, 1, 0x0300_0000, 16 << 20),
        none,
        "xlp_info",
        &["0x0001"],
    );
    // Page address not at a segment start.
    check(
        header_bytes(0xD110, 2, 1, 0x0300_2000, 16 << 20),
        none,
        "xlp_pageaddr",
        &["0/3002000", "16 MiB"],
    );
    check(
        good(),
        HeaderExpectations {
            system_identifier: Some(42),
            ..none
        },
        "xlp_sysid",
        &["42", &SYSID.to_string()],
    );
    check(
        good(),
        HeaderExpectations {
            segment_size: Some(WalSegmentSize::new(64 << 20).unwrap()),
            ..none
        },
        "xlp_seg_size",
        &["67108864", "16777216"],
    );
    check(
        header_bytes(0xD110, 2, 3, 0x0300_0000, 16 << 20),
        HeaderExpectations {
            name: Some(name("000000020000000000000003")),
            ..none
        },
        "xlp_tli",
        &["at most 2", "is 3"],
    );
    // A recycled segment: renamed for later use, header still from its past.
    check(
        good(),
        HeaderExpectations {
            name: Some(name("000000030000000000000007")),
            ..none
        },
        "xlp_pageaddr",
        &["0/7000000", "0/3000000"],
    );
    check(
        good(),
        HeaderExpectations {
            name: Some(name("000000010000000000000004")),
            ..none
        },
        "xlp_pageaddr",
        &["0/4000000", "0/3000000"],
    );
}
