//! Prints WAL names.
//!
//! ```text
//! cargo run -p barman-wal --example wal_names -- range 1 0/3000028 0/5000100 [SEGMENT_BYTES]
//! cargo run -p barman-wal --example wal_names -- name 000000010000000000000003.00000028.backup
//! cargo run -p barman-wal --example wal_names -- header /path/to/pg_wal/000000010000000000000001
//! ```
//!
//! `range` lists the segments holding the WAL between two LSNs (what a backup
//! from the first to the second needs), `name` explains an archive file name,
//! and `header` decodes and checks the long page header of a segment file.

use std::error::Error;
use std::fs::File;
use std::process::ExitCode;

use barman_wal::{
    HeaderExpectations, LongPageHeader, Lsn, SegmentName, TimelineId, WalFileName, WalSegmentSize,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["range", tli, start, end] => range(tli, start, end, None),
        ["range", tli, start, end, bytes] => range(tli, start, end, Some(bytes)),
        ["name", name] => name_info(name),
        ["header", path] => header(path),
        _ => {
            eprintln!(
                "usage: wal_names range TLI START_LSN END_LSN [SEGMENT_BYTES]\n       \
                 wal_names name FILE_NAME\n       wal_names header SEGMENT_FILE"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn range(tli: &str, start: &str, end: &str, bytes: Option<&str>) -> Result<(), Box<dyn Error>> {
    let tli: TimelineId = tli.parse()?;
    let (start, end): (Lsn, Lsn) = (start.parse()?, end.parse()?);
    let size = match bytes {
        Some(b) => WalSegmentSize::new(b.parse()?)?,
        None => WalSegmentSize::DEFAULT,
    };
    let first = SegmentName::from_lsn(tli, start, size);
    let last = SegmentName::from_lsn(tli, end, size);
    println!("# {start} .. {end} on timeline {tli}, {size} segments");
    for segment in SegmentName::range(&first, &last, size) {
        println!("wals/{}/{segment}", segment.hash_dir());
    }
    Ok(())
}

fn name_info(name: &str) -> Result<(), Box<dyn Error>> {
    let file: WalFileName = name.parse()?;
    let kind = match file {
        WalFileName::Segment(_) => "segment",
        WalFileName::Partial(_) => "partial segment",
        WalFileName::History(_) => "timeline history",
        WalFileName::BackupLabel { .. } => "backup history (label)",
    };
    println!("canonical: {file}");
    println!("kind:      {kind}");
    println!("timeline:  {}", file.timeline());
    if let Some(segment) = file.segment() {
        let size = WalSegmentSize::DEFAULT;
        println!(
            "segment:   {segment} (starts at {} with 16 MiB segments)",
            segment.start_lsn(size)
        );
    }
    println!(
        "stored in: wals/{}",
        file.archive_subdir().map(|d| d + "/").unwrap_or_default()
    );
    Ok(())
}

fn header(path: &str) -> Result<(), Box<dyn Error>> {
    let h = LongPageHeader::read_from(&mut File::open(path)?)?;
    println!(
        "magic:             {:#06X} (PostgreSQL {})",
        h.magic,
        h.pg_major().map_or("?".into(), |v| v.to_string())
    );
    println!("info:              {:#06X}", h.info);
    println!("timeline:          {}", h.timeline);
    println!("page address:      {}", h.page_address);
    println!("system identifier: {}", h.system_identifier);
    println!(
        "segment size:      {} ({} bytes)",
        h.segment_size,
        h.segment_size.bytes()
    );
    println!("block size:        {}", h.block_size);
    println!("segment name:      {}", h.segment_name());
    let file_name = std::path::Path::new(path)
        .file_name()
        .and_then(|n| n.to_str());
    let name = file_name.and_then(|n| n.parse::<SegmentName>().ok());
    h.validate(&HeaderExpectations {
        name,
        ..HeaderExpectations::default()
    })?;
    println!(
        "valid:             yes{}",
        if name.is_some() {
            " (matches the file name)"
        } else {
            ""
        }
    );
    Ok(())
}
