//! A real PostgreSQL 15 WAL segment read back with `barman_wal::LongPageHeader`.

use std::fs::File;

use barman_testkit::PgCluster;
use barman_wal::{HeaderExpectations, LongPageHeader, SegmentName};

#[test]
fn switched_segment_header_matches_the_cluster() {
    let pg = PgCluster::start().expect("start PostgreSQL 15");
    pg.psql(
        "CREATE TABLE t (id int, payload text); \
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 50000) g",
    )
    .unwrap();
    let name = pg.switch_wal().unwrap();
    let path = pg.wal_dir().join(&name);
    let mut file = File::open(&path).expect("switched-out segment is in pg_wal");
    let file_len = file.metadata().unwrap().len();

    let header = LongPageHeader::read_from(&mut file).expect("long page header");
    let system_identifier = pg.system_identifier().unwrap();
    let setting: u64 = pg
        .psql("SELECT pg_size_bytes(current_setting('wal_segment_size'))")
        .unwrap()
        .parse()
        .unwrap();

    assert_eq!(header.system_identifier, system_identifier);
    assert_eq!(header.segment_name().to_string(), name);
    assert_eq!(header.pg_major(), Some(15));
    assert_eq!(header.segment_size.bytes(), file_len);
    assert_eq!(file_len, setting);

    let expected_name: SegmentName = name.parse().unwrap();
    let expectations = HeaderExpectations {
        system_identifier: Some(system_identifier),
        segment_size: Some(header.segment_size),
        name: Some(expected_name),
    };
    header
        .validate(&expectations)
        .expect("header matches the cluster");

    let wrong_system = HeaderExpectations {
        system_identifier: Some(system_identifier ^ 1),
        ..expectations
    };
    assert!(header.validate(&wrong_system).is_err());
    let other = if name == "000000010000000000000099" {
        "000000010000000000000098"
    } else {
        "000000010000000000000099"
    };
    let wrong_name = HeaderExpectations {
        system_identifier: Some(system_identifier),
        segment_size: Some(header.segment_size),
        name: Some(other.parse().unwrap()),
    };
    assert!(header.validate(&wrong_name).is_err());
}
