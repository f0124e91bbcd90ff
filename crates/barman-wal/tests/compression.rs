//! Compression stream filters: round trips, magic detection, custom filters,
//! and cross-checks against the real command-line tools (which must be
//! installed: a missing tool fails the test and names the package).

#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

#[path = "compression/wal_data.rs"]
mod wal_data;

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use barman_wal::{
    Codec, Compression, CompressionLevel, CustomFilter, Decoder, Error, FilterChild, FilterProcess,
    FilterSpawner, MAX_MAGIC_LEN, ShellSpawner, compress, decompress, detect, detect_custom,
};

const SEGMENT: usize = 16 * 1024 * 1024;

/// One 16 MiB WAL-like payload shared by the tests.
fn segment() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| wal_data::wal_like(SEGMENT, 0x5eed))
}

/// 1 MiB of the same data, for the level matrix.
fn small() -> &'static [u8] {
    &segment()[..1024 * 1024]
}

fn compress_with(c: Compression, level: CompressionLevel, data: &[u8]) -> Vec<u8> {
    let enc = c.writer(Vec::new(), level).unwrap();
    let (n, out) = compress(&mut &data[..], enc).unwrap();
    assert_eq!(n, data.len() as u64);
    out
}

fn decompress_with(c: Compression, stored: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    decompress(c.reader(stored).unwrap(), &mut out).unwrap();
    out
}

fn levels() -> [CompressionLevel; 6] {
    [
        CompressionLevel::Low,
        CompressionLevel::Medium,
        CompressionLevel::High,
        CompressionLevel::Level(i32::MIN),
        CompressionLevel::Level(0),
        CompressionLevel::Level(i32::MAX),
    ]
}

#[test]
fn level_mapping_follows_barman() {
    use CompressionLevel::{High, Level, Low, Medium};
    let table = [
        (Compression::Gzip, [1, 6, 9], (1, 9)),
        (Compression::Bzip2, [1, 5, 9], (1, 9)),
        (Compression::Xz, [1, 3, 5], (1, 9)),
        (Compression::Zstd, [1, 4, 9], (-22, 22)),
        (Compression::Lz4, [0, 6, 10], (0, 16)),
    ];
    for (c, [low, medium, high], (min, max)) in table {
        assert_eq!(c.level_for(Low), Some(low), "{c} low");
        assert_eq!(c.level_for(Medium), Some(medium), "{c} medium");
        assert_eq!(c.level_for(High), Some(high), "{c} high");
        assert_eq!(c.level_for(Level(i32::MIN)), Some(min), "{c} clamped low");
        assert_eq!(c.level_for(Level(i32::MAX)), Some(max), "{c} clamped high");
        assert_eq!(c.level_for(Level(min + 1)), Some(min + 1), "{c} in range");
        assert_eq!(c.level_range(), Some((min, max)));
    }
    for c in [Compression::Snappy, Compression::Custom] {
        assert_eq!(c.level_for(High), None);
        assert_eq!(c.level_range(), None);
    }
}

#[test]
fn round_trip_every_codec_at_medium_on_a_full_segment() {
    let data = segment();
    for c in Compression::BUILTIN {
        let stored = compress_with(c, CompressionLevel::Medium, data);
        assert!(
            stored.len() < data.len() / 2,
            "{c} barely compressed: {} bytes",
            stored.len()
        );
        assert_eq!(detect(&stored), Some(c));
        assert!(
            decompress_with(c, &stored) == data,
            "{c} round trip differs"
        );
    }
}

#[test]
fn round_trip_every_codec_at_every_level() {
    let data = small();
    for c in Compression::BUILTIN {
        for level in levels() {
            let stored = compress_with(c, level, data);
            assert!(
                decompress_with(c, &stored) == data,
                "{c} {level} round trip differs"
            );
        }
    }
    // Levels really reach the libraries: the high level is smaller.
    for c in [Compression::Gzip, Compression::Xz, Compression::Zstd] {
        let low = compress_with(c, CompressionLevel::Low, data).len();
        let high = compress_with(c, CompressionLevel::High, data).len();
        assert!(high < low, "{c}: high {high} not smaller than low {low}");
    }
}

#[test]
fn empty_input_round_trips() {
    for c in Compression::BUILTIN {
        let stored = compress_with(c, CompressionLevel::Medium, b"");
        assert!(decompress_with(c, &stored).is_empty(), "{c}");
    }
}

#[test]
fn detection_tells_every_codec_apart_and_ignores_plain_wal() {
    let data = small();
    for c in Compression::BUILTIN {
        let stored = compress_with(c, CompressionLevel::Low, data);
        assert_eq!(detect(&stored[..MAX_MAGIC_LEN]), Some(c));
        assert_eq!(c.magic(), &stored[..c.magic().len()], "{c} magic()");
        assert_eq!(detect_custom(&stored, Some(&[0xca, 0xfe])), Some(c));
    }
    assert_eq!(&data[..2], &wal_data::PG15_PAGE_MAGIC.to_le_bytes());
    assert_eq!(detect(data), None);
    assert_eq!(detect(b""), None);
    assert_eq!(
        detect(&[0x1f, 0x8b]),
        None,
        "a truncated magic is not a match"
    );
    assert_eq!(
        detect_custom(b"\xca\xfe..", Some(&[0xca, 0xfe])),
        Some(Compression::Custom)
    );
    assert_eq!(
        detect_custom(data, Some(&[])),
        None,
        "empty custom magic never matches"
    );
    assert!(Compression::Custom.magic().is_empty());
}

#[test]
fn truncated_streams_are_errors_not_short_reads() {
    let data = small();
    for c in Compression::BUILTIN {
        let stored = compress_with(c, CompressionLevel::Low, data);
        let cut = &stored[..stored.len() / 2];
        let mut out = Vec::new();
        let res = c.reader(cut).unwrap().read_to_end(&mut out);
        assert!(
            res.is_err(),
            "{c}: truncated stream read as {} bytes",
            out.len()
        );
    }
}

#[test]
fn streams_missing_their_end_are_errors() {
    // Dropping the last 8 bytes removes gzip's trailer, lz4's end mark and
    // checksum (a cut exactly at a block boundary), zstd's checksum, the end
    // of bzip2's and xz's stream footers. Snappy framing has no end marker,
    // so a cut between chunks cannot be detected there.
    let data = small();
    for c in Compression::BUILTIN {
        if c == Compression::Snappy {
            continue;
        }
        let stored = compress_with(c, CompressionLevel::Low, data);
        let cut = &stored[..stored.len() - 8];
        let mut out = Vec::new();
        let res = c.reader(cut).unwrap().read_to_end(&mut out);
        assert!(
            res.is_err(),
            "{c}: stream without its end read as {} bytes",
            out.len()
        );
    }
}

#[test]
fn plain_encoder_and_decoder_pass_bytes_through() {
    let enc = barman_wal::Encoder::plain(Vec::new());
    assert_eq!(enc.compression(), None);
    let (_, out) = compress(&mut &b"raw"[..], enc).unwrap();
    assert_eq!(out, b"raw");
    let mut back = Vec::new();
    let dec = Decoder::for_detected(detect(&out), out.as_slice()).unwrap();
    assert_eq!(dec.compression(), None);
    decompress(dec, &mut back).unwrap();
    assert_eq!(back, b"raw");
}

#[test]
fn encoders_and_decoders_name_their_algorithm() {
    for c in Compression::BUILTIN {
        let enc = c.writer(Vec::new(), CompressionLevel::Low).unwrap();
        assert_eq!(enc.compression(), Some(c));
        let dec = Decoder::new(c, &b""[..]).unwrap();
        assert_eq!(dec.compression(), Some(c));
        assert!(
            format!("{dec:?}").contains(&format!("Some({c:?})")),
            "{dec:?}"
        );
    }
}

#[test]
fn snappy_reads_concatenated_streams() {
    let a = &small()[..300_000];
    let b = &small()[300_000..700_000];
    let mut both = compress_with(Compression::Snappy, CompressionLevel::Medium, a);
    both.extend(compress_with(
        Compression::Snappy,
        CompressionLevel::Medium,
        b,
    ));
    assert!(decompress_with(Compression::Snappy, &both) == [a, b].concat());
}

#[test]
fn bad_names_levels_and_magic_are_errors() {
    for bad in ["", "fast", "1.5", "mediumm", "9999999999999"] {
        let err = bad.parse::<CompressionLevel>().unwrap_err();
        assert!(
            matches!(err, Error::InvalidCompressionLevel { .. }),
            "{bad}: {err}"
        );
    }
    assert_eq!(
        "-5".parse::<CompressionLevel>().unwrap(),
        CompressionLevel::Level(-5)
    );
    assert_eq!(
        " HIGH ".parse::<CompressionLevel>().unwrap(),
        CompressionLevel::High
    );
    assert!(matches!(
        "rar".parse::<Compression>(),
        Err(Error::UnknownCompression { .. })
    ));
    for bad in ["", "0x", "0x1f8", "0xzz", "1f 8b"] {
        let err = CustomFilter::parse_magic(bad).unwrap_err();
        assert!(
            matches!(err, Error::InvalidCustomMagic { .. }),
            "{bad}: {err}"
        );
    }
    assert_eq!(CustomFilter::parse_magic("0X1F8B").unwrap(), [0x1f, 0x8b]);
    assert!(matches!(
        Compression::Custom.writer(Vec::new(), CompressionLevel::Medium),
        Err(Error::CustomFilterRequired)
    ));
    assert!(matches!(
        Compression::Custom.reader(&b""[..]),
        Err(Error::CustomFilterRequired)
    ));
    assert!(matches!(
        Codec::builtin(Compression::Custom, CompressionLevel::Low),
        Err(Error::CustomFilterRequired)
    ));
}

// ---------------------------------------------------------------------------
// Cross-checks with the command-line tools.

/// The CLI for `c`, and the Debian package that provides it.
fn cli(c: Compression) -> (PathBuf, &'static str) {
    let (tool, package) = match c {
        Compression::Gzip => ("gzip", "gzip"),
        Compression::Bzip2 => ("bzip2", "bzip2"),
        Compression::Xz => ("xz", "xz-utils"),
        Compression::Zstd => ("zstd", "zstd"),
        Compression::Lz4 => ("lz4", "lz4"),
        other => panic!("no CLI for {other}"),
    };
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    let path = found.unwrap_or_else(|| {
        panic!("`{tool}` is not installed: run `apt-get install -y {package}` to run this test")
    });
    (path, package)
}

/// Runs `tool args < input > output`, asserting success.
fn run_filter(tool: &Path, args: &[&str], input: &Path, output: &Path) {
    let status = Command::new(tool)
        .args(args)
        .stdin(File::open(input).unwrap())
        .stdout(File::create(output).unwrap())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{} {args:?} failed: {status}",
        tool.display()
    );
}

const CLI_CODECS: [Compression; 5] = [
    Compression::Gzip,
    Compression::Bzip2,
    Compression::Xz,
    Compression::Zstd,
    Compression::Lz4,
];

#[test]
fn cli_decompresses_what_we_compress() {
    let dir = tempfile::tempdir().unwrap();
    let data = segment();
    for c in CLI_CODECS {
        let (tool, _) = cli(c);
        for level in [CompressionLevel::Low, CompressionLevel::High] {
            let stored = dir.path().join(format!("{c}-{level}"));
            let plain = dir.path().join(format!("{c}-{level}.out"));
            let file = File::create(&stored).unwrap();
            let (_, file) = compress(&mut &data[..], c.writer(file, level).unwrap()).unwrap();
            file.sync_all().unwrap();
            run_filter(&tool, &["-dc"], &stored, &plain);
            assert!(
                std::fs::read(&plain).unwrap() == data,
                "`{c} -dc` output differs ({level})"
            );
        }
    }
}

#[test]
fn we_decompress_what_the_cli_compresses_including_concatenated_streams() {
    let dir = tempfile::tempdir().unwrap();
    let data = segment();
    let input = dir.path().join("wal");
    std::fs::write(&input, data).unwrap();
    let half = dir.path().join("half");
    std::fs::write(&half, &data[..SEGMENT / 2]).unwrap();
    for c in CLI_CODECS {
        let (tool, _) = cli(c);
        let stored = dir.path().join(format!("wal.{c}"));
        run_filter(&tool, &["-c"], &input, &stored);
        let bytes = std::fs::read(&stored).unwrap();
        assert_eq!(detect(&bytes), Some(c), "magic of `{c} -c` output");
        let mut out = Vec::new();
        decompress(c.reader(File::open(&stored).unwrap()).unwrap(), &mut out).unwrap();
        assert!(out == data, "our {c} reader differs on `{c} -c` output");

        // Two streams back to back (what `cat a.gz b.gz` or pigz produce).
        let second = dir.path().join(format!("half.{c}"));
        run_filter(&tool, &["-c"], &half, &second);
        let mut both = bytes;
        both.extend(std::fs::read(&second).unwrap());
        let expected = [data, &data[..SEGMENT / 2]].concat();
        assert!(
            decompress_with(c, &both) == expected,
            "{c}: concatenated streams differ"
        );
    }
}

// ---------------------------------------------------------------------------
// Custom filters.

fn gzip_filter() -> CustomFilter {
    cli(Compression::Gzip);
    CustomFilter::new("gzip -c", "gzip -dc")
        .with_magic(CustomFilter::parse_magic("0x1f8b").unwrap())
}

#[test]
fn custom_filter_streams_through_shell_commands() {
    let data = segment();
    let filter = gzip_filter();
    let codec = Codec::custom(filter.clone());
    assert_eq!(codec.compression(), Compression::Custom);

    let (n, stored) = compress(&mut &data[..], codec.writer(Vec::new()).unwrap()).unwrap();
    assert_eq!(n, data.len() as u64);
    assert_eq!(codec.detect(&stored), Some(Compression::Custom));
    assert!(filter.matches(&stored));
    // The filter really ran gzip: our gzip reader agrees.
    assert!(decompress_with(Compression::Gzip, &stored) == data);

    let mut back = Vec::new();
    decompress(codec.reader(io::Cursor::new(stored)).unwrap(), &mut back).unwrap();
    assert!(back == data, "custom round trip differs");
}

#[test]
fn custom_codec_reads_files_stored_with_another_algorithm() {
    let codec = Codec::custom(gzip_filter());
    let stored = compress_with(Compression::Zstd, CompressionLevel::Low, small());
    let found = codec.detect(&stored);
    assert_eq!(found, Some(Compression::Zstd));
    let mut back = Vec::new();
    decompress(
        codec.reader_for(found, io::Cursor::new(stored)).unwrap(),
        &mut back,
    )
    .unwrap();
    assert!(back == small());
}

fn filter_failure(err: &io::Error) -> (&str, &str, &str) {
    match err.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
        Some(Error::FilterFailed {
            command,
            status,
            stderr,
        }) => (command, status, stderr),
        _ => panic!("expected a FilterFailed error, got {err:?}"),
    }
}

#[test]
fn failing_compression_filter_is_an_error_naming_command_and_status() {
    let filter = CustomFilter::new("false", "false");
    let mut enc = filter.writer(&ShellSpawner::new(), Vec::new()).unwrap();
    // The command may die before or after we write: either the write or
    // finish reports it, never silence.
    let err = match enc.write_all(small()) {
        Err(e) => e,
        Ok(()) => enc.finish().unwrap_err(),
    };
    let (command, status, _) = filter_failure(&err);
    assert_eq!(command, "false");
    assert_eq!(status, "exit status: 1");
    assert!(
        err.to_string()
            .contains("compression filter `false` failed (exit status: 1)")
    );
}

#[test]
fn failing_decompression_filter_reports_exit_status_and_bounded_stderr() {
    let script = "head -c 100 >/dev/null; echo 'bad magic' >&2; head -c 100000 /dev/zero | tr '\\0' x >&2; exit 3";
    let filter = CustomFilter::new("cat", script);
    let mut out = Vec::new();
    let err = filter
        .reader(&ShellSpawner::new(), small())
        .unwrap()
        .read_to_end(&mut out)
        .unwrap_err();
    let (command, status, stderr) = filter_failure(&err);
    assert_eq!(command, script);
    assert_eq!(status, "exit status: 3");
    assert!(stderr.starts_with("bad magic"), "stderr: {stderr:.40}");
    assert!(
        stderr.len() <= 4096,
        "stderr not bounded: {} bytes",
        stderr.len()
    );
}

#[test]
fn filter_env_reaches_the_command() {
    let filter = CustomFilter::new("printf %s \"$WAL_TEST_VAR\"; cat >/dev/null", "cat");
    let spawner = ShellSpawner::new().env("WAL_TEST_VAR", "from-env");
    let enc = filter.writer(&spawner, Vec::new()).unwrap();
    let (_, out) = compress(&mut &b"ignored"[..], enc).unwrap();
    assert_eq!(out, b"from-env");
}

/// A spawner that runs no process: a thread applies `f` to each byte.
#[derive(Debug, Default)]
struct FakeSpawner {
    commands: Mutex<Vec<String>>,
}

struct FakeChild(Option<std::thread::JoinHandle<io::Result<()>>>);

impl FilterChild for FakeChild {
    fn wait(&mut self) -> io::Result<ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        let ok = self
            .0
            .take()
            .is_none_or(|h| h.join().is_ok_and(|r| r.is_ok()));
        Ok(ExitStatus::from_raw(if ok { 0 } else { 1 << 8 }))
    }
    fn kill(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FilterSpawner for FakeSpawner {
    fn spawn(&self, command: &str) -> io::Result<FilterProcess> {
        self.commands.lock().unwrap().push(command.to_owned());
        let flip = command == "flip";
        let (mut child_in, stdin) = io::pipe()?;
        let (stdout, mut child_out) = io::pipe()?;
        let worker = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = child_in.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                for b in &mut buf[..n] {
                    *b = if flip { !*b } else { *b };
                }
                child_out.write_all(&buf[..n])?;
            }
        });
        Ok(FilterProcess {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            stderr: None,
            child: Box::new(FakeChild(Some(worker))),
        })
    }
}

#[test]
fn spawner_is_injectable() {
    let spawner = Arc::new(FakeSpawner::default());
    let codec = Codec::Custom {
        filter: CustomFilter::new("flip", "flip").with_magic(vec![!0x10, !0xd1]),
        spawner: spawner.clone(),
    };
    let data = small();
    let (_, stored) = compress(&mut &data[..], codec.writer(Vec::new()).unwrap()).unwrap();
    assert_eq!(stored.len(), data.len());
    assert_eq!(stored[0], !data[0]);
    assert_eq!(codec.detect(&stored), Some(Compression::Custom));
    let mut back = Vec::new();
    decompress(codec.reader(io::Cursor::new(stored)).unwrap(), &mut back).unwrap();
    assert!(back == data);
    assert_eq!(*spawner.commands.lock().unwrap(), ["flip", "flip"]);
}

#[derive(Debug)]
struct BrokenSpawner;

impl FilterSpawner for BrokenSpawner {
    fn spawn(&self, _: &str) -> io::Result<FilterProcess> {
        Err(io::Error::new(io::ErrorKind::NotFound, "no shell"))
    }
}

#[test]
fn spawn_failure_names_the_command() {
    let err = CustomFilter::new("mycompress", "x")
        .writer(&BrokenSpawner, Vec::new())
        .unwrap_err();
    assert!(matches!(&err, Error::FilterSpawn { command, .. } if command == "mycompress"));
    assert_eq!(
        err.to_string(),
        "cannot start compression filter `mycompress`"
    );
}
