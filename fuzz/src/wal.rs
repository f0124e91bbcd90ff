//! WAL files: the long page header, file names, LSNs, timeline history
//! files, the compressed forms, and the checks a file passes before it is
//! archived.

use std::io::Read;
use std::path::Path;

use barman_core::archive::WalExpectations;
use barman_core::archive::inspect::inspect_plain;
use barman_wal::{
    Decoder, HeaderExpectations, LongPageHeader, Lsn, TimelineHistory, WalFileName, detect,
};

/// How much of a decompressed stream is read (a bomb is not inflated).
const MAX_PLAIN: u64 = 4 << 20;

/// WAL bytes: the header is decoded and checked (a header valid on its own
/// is also valid for the segment it names, the system identifier and
/// segment size it carries); the bytes are inspected as a segment, a
/// history file and a backup label; the text is parsed as a file name
/// (which prints back, in upper case), an LSN and a history file; the bytes
/// are decompressed as their magic says.
pub fn wal_header(data: &[u8]) {
    let mut segment = "000000010000000000000001"
        .parse::<WalFileName>()
        .expect("a segment name");
    if let Ok(header) = LongPageHeader::parse(data) {
        let _ = header.pg_major();
        let name = header.segment_name();
        let printed = name.to_string();
        assert_eq!(
            printed
                .parse::<WalFileName>()
                .ok()
                .and_then(|n| n.segment()),
            Some(name),
            "a segment name does not read back"
        );
        if header.validate(&HeaderExpectations::default()).is_ok() {
            let own = HeaderExpectations {
                system_identifier: Some(header.system_identifier),
                segment_size: Some(header.segment_size),
                name: Some(name),
            };
            if let Err(e) = header.validate(&own) {
                panic!("a valid header does not match its own segment: {e}");
            }
        }
        segment = WalFileName::Segment(name);
    }
    let expectations = WalExpectations::default();
    let path = Path::new("/fuzz/wal");
    for name in [
        segment,
        "00000002.history".parse().expect("a history name"),
        "000000010000000000000001.00000028.backup"
            .parse()
            .expect("a backup label name"),
    ] {
        let _ = inspect_plain(&mut &data[..], path, &name, &expectations);
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(name) = text.parse::<WalFileName>() {
        // Read in either case (as Barman does), printed in upper case.
        assert!(
            name.to_string().eq_ignore_ascii_case(&text),
            "a WAL file name does not print back: {text} as {name}"
        );
        let _ = name.archive_subdir();
    }
    if let Ok(lsn) = text.parse::<Lsn>() {
        assert_eq!(lsn.to_string().parse::<Lsn>().ok(), Some(lsn));
    }
    if let Ok(history) = TimelineHistory::parse(&text) {
        let _ = history.entries().len();
    }
    if let Ok(mut decoder) = Decoder::for_detected(detect(data), data) {
        let _ = std::io::copy(&mut (&mut decoder).take(MAX_PLAIN), &mut std::io::sink());
    }
}
