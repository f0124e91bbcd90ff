use proptest::prelude::*;

use super::*;

fn record<'a>(time: &'a jiff::Zoned, message: &'a str) -> LogRecord<'a> {
    LogRecord {
        time,
        relative_created_ms: -4.567_89,
        name: "barman.cli",
        level: LogLevel::Warning,
        message,
        pathname: Some("crates/barman-cli/src/output.rs"),
        lineno: Some(97),
        process: 4242,
        thread: 4243,
        thread_name: "MainThread",
    }
}

fn utc(second: i64, nanosecond: i32) -> jiff::Zoned {
    jiff::Timestamp::new(second, nanosecond)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
}

fn render(format: &str, record: &LogRecord<'_>) -> String {
    let f = LogFormat::parse(format).unwrap_or_else(|e| panic!("{format}: {e}"));
    let mut out = String::new();
    f.render(record, &mut out);
    out
}

/// Each expected line is what Python 3.11 printed for `format % record`,
/// the record holding the same values.
#[test]
fn renders_as_pythons_percent_operator() {
    let time = utc(1_732_248_910, 123_456_789);
    let r = record(&time, "it's 100% done");
    let cases = [
        (
            "%(asctime)s [%(process)s] %(name)s %(levelname)s: %(message)s",
            "2024-11-22 04:15:10,123 [4242] barman.cli WARNING: it's 100% done",
        ),
        (
            "%(levelname)-8s|%(levelname)8s|%(levelname).4s|%(levelname)10.3s|%(levelname)-010s|",
            "WARNING | WARNING|WARN|       WAR|WARNING   |",
        ),
        (
            "%(lineno)4d|%(lineno)-4d|%(lineno)04d|%(lineno)+d|%(lineno) d|%(lineno).4d|%(lineno)#o|\
             %(lineno)#x|%(lineno)#X|%(lineno)#08x|%(lineno)c|%(lineno)5c|",
            "  97|97  |0097|+97| 97|0097|0o141|0x61|0X61|0x000061|a|    a|",
        ),
        (
            "%(created)f|%(created).3f|%(created)s|%(created)r|%(created)d|%(created)e|%(created)E|\
             %(created)g|%(created)G|%(created).10g|%(created)#.0f|%(created).0e|%(created)#.0e|",
            "1732248910.123457|1732248910.123|1732248910.1234567|1732248910.1234567|1732248910|\
             1.732249e+09|1.732249E+09|1.73225e+09|1.73225E+09|1732248910|1732248910.|2e+09|2.e+09|",
        ),
        (
            "%(msecs)03d|%(msecs)s|%(msecs)f|%(msecs)g|%(msecs)#g|%(msecs).0g|%(msecs)#.0g|\
             %(msecs)012.2e|%(msecs)i|%(msecs)u|",
            "123|123.0|123.000000|123|123.000|1e+02|1.e+02|00001.23e+02|123|123|",
        ),
        (
            "%(relativeCreated)s|%(relativeCreated)d|%(relativeCreated)08.2f|%(relativeCreated)+.1f|\
             %(relativeCreated)-10.3f|%(relativeCreated)#10.3g|%(relativeCreated)010.3g|\
             %(relativeCreated)e|%(relativeCreated) f|",
            "-4.56789|-4|-0004.57|-4.6|-4.568    |     -4.57|-000004.57|-4.567890e+00|-4.567890|",
        ),
        (
            "%(message)r|%(message)a|%(message).5r|%(name)r|%(lineno)r|%(created)a|%(taskName)s|\
             %(taskName)r|%(taskName)10s|",
            "\"it's 100% done\"|\"it's 100% done\"|\"it's|'barman.cli'|97|1732248910.1234567|None|\
             None|      None|",
        ),
        (
            "%(filename)s %(module)s %(pathname)s %(funcName)s %(processName)s %(thread)d \
             %(threadName)s %%",
            "output.rs output crates/barman-cli/src/output.rs (unknown function) MainProcess 4243 \
             MainThread %",
        ),
        (
            "%(levelno)ld %(levelno)hd %(levelno)Ld %(levelno)5.1f %(levelno)e %(levelno)g \
             %(levelno)0-5d|",
            "30 30 30  30.0 3.000000e+01 30 30   |",
        ),
    ];
    for (format, python) in cases {
        assert_eq!(render(format, &r), python, "{format}");
    }
}

#[test]
fn levels_and_unknown_locations() {
    let time = utc(0, 0);
    for (level, name, number) in [
        (LogLevel::Debug, "DEBUG", "10"),
        (LogLevel::Info, "INFO", "20"),
        (LogLevel::Warning, "WARNING", "30"),
        (LogLevel::Error, "ERROR", "40"),
        (LogLevel::Critical, "CRITICAL", "50"),
    ] {
        let r = LogRecord {
            level,
            ..record(&time, "m")
        };
        assert_eq!(
            render("%(levelname)s %(levelno)d", &r),
            format!("{name} {number}")
        );
    }
    // Python's placeholders when the caller is unknown.
    let r = LogRecord {
        pathname: None,
        lineno: None,
        ..record(&time, "m")
    };
    assert_eq!(
        render(
            "%(pathname)s|%(filename)s|%(module)s|%(lineno)d|%(funcName)s",
            &r
        ),
        "(unknown file)|(unknown file)|(unknown file)|0|(unknown function)"
    );
    assert_eq!(
        render("%(asctime)s %(created)s", &r),
        "1970-01-01 00:00:00,000 0.0"
    );
}

#[test]
fn module_is_pythons_splitext() {
    assert_eq!(python_stem("output.rs"), "output");
    assert_eq!(python_stem("a.b.rs"), "a.b");
    assert_eq!(python_stem(".hidden"), ".hidden");
    assert_eq!(python_stem("noext"), "noext");
    assert_eq!(python_stem("..x.rs"), "..x");
}

#[test]
fn floats_print_as_python() {
    // (value, repr, '%.0f', '%.2f', '%.1e') from Python 3.11.
    let cases = [
        (1e-05, "1e-05", "0", "0.00", "1.0e-05"),
        (
            1e16,
            "1e+16",
            "10000000000000000",
            "10000000000000000.00",
            "1.0e+16",
        ),
        (
            1e15,
            "1000000000000000.0",
            "1000000000000000",
            "1000000000000000.00",
            "1.0e+15",
        ),
        (0.0001, "0.0001", "0", "0.00", "1.0e-04"),
        (
            1.23456e22,
            "1.23456e+22",
            "12345600000000000000000",
            "12345600000000000000000.00",
            "1.2e+22",
        ),
        (123.0, "123.0", "123", "123.00", "1.2e+02"),
        (0.1, "0.1", "0", "0.10", "1.0e-01"),
        (1.5e-7, "1.5e-07", "0", "0.00", "1.5e-07"),
        (12.5, "12.5", "12", "12.50", "1.2e+01"),
        (100.0, "100.0", "100", "100.00", "1.0e+02"),
        (2.5, "2.5", "2", "2.50", "2.5e+00"),
        (0.125, "0.125", "0", "0.12", "1.2e-01"),
    ];
    let time = utc(0, 0);
    for (x, repr, f0, f2, e1) in cases {
        assert_eq!(python_float_repr(x), repr, "{x}");
        let r = LogRecord {
            relative_created_ms: x,
            ..record(&time, "m")
        };
        assert_eq!(
            render(
                "%(relativeCreated)r|%(relativeCreated).0f|%(relativeCreated).2f|%(relativeCreated).1e",
                &r
            ),
            format!("{repr}|{f0}|{f2}|{e1}"),
            "{x}"
        );
    }
    assert_eq!(python_float_repr(-0.0), "-0.0");
    assert_eq!(python_float_repr(-2.5), "-2.5");
}

#[test]
fn texts_repr_as_python() {
    let s = "a\"b'c\\\u{1}\t\n\r\u{7f} \u{e9}\u{a0}\u{200b}\u{e000}\u{1F600}";
    // Python 3.11's repr() and ascii() of the same text.
    assert_eq!(
        str_repr(s),
        "'a\"b\\'c\\\\\\x01\\t\\n\\r\\x7f \u{e9}\\xa0\\u200b\\ue000\u{1F600}'"
    );
    assert_eq!(
        str_ascii(s),
        "'a\"b\\'c\\\\\\x01\\t\\n\\r\\x7f \\xe9\\xa0\\u200b\\ue000\\U0001f600'"
    );
    assert_eq!(str_repr("\""), "'\"'");
    assert_eq!(str_repr("'\""), "'\\'\"'");
    assert_eq!(str_repr("it's"), "\"it's\"");
}

#[test]
fn refuses_what_python_could_not_render() {
    let cases = [
        (
            "%(asctime)s %(user)s",
            "`%(user)s`: unknown field `user` (the fields are asctime,",
        ),
        ("%(Message)s", "unknown field `Message`"),
        ("%(levelname)-8", "`%(levelname)-8`: incomplete spec"),
        ("%(message)", "incomplete spec"),
        ("%(message", "no closing `)`"),
        (
            "%(message)z",
            "`%(message)z`: unsupported conversion character `z`",
        ),
        ("%(message)é", "unsupported conversion character `é`"),
        (
            "%(levelname)d",
            "`%(levelname)d`: `%d` needs a number, and `levelname` is text",
        ),
        (
            "%(created)x",
            "`%x` needs an integer, and `created` is a float",
        ),
        ("%(taskName)d", "`taskName` is None"),
        ("%(message)c", "`%c` needs an integer"),
        ("%(asctime)s %s", "`%s`: a conversion without a field name"),
        (
            "%(asctime)s %-5d",
            "`%-5d`: a conversion without a field name",
        ),
        ("%(asctime)s %", "`%`: a conversion without a field name"),
        ("%(message)%", "unsupported conversion character `%`"),
        ("%(message)*s", "`*`"),
        ("%(message).*s", "`*`"),
        (
            "%(message)1001s",
            "width or precision 1001 is too large (at most 1000)",
        ),
        ("%(message).99999999999999999999999s", "too large"),
        ("no field", "no `%(field)` conversion"),
        ("", "no `%(field)` conversion"),
        ("100%% sure", "no `%(field)` conversion"),
    ];
    for (format, why) in cases {
        match LogFormat::parse(format) {
            Ok(f) => panic!("{format:?} parsed: {f:?}"),
            Err(e) => assert!(e.to_string().contains(why), "{format:?}: {e}"),
        }
    }
    // At the limit, and the nested key Python reads (then unknown).
    assert!(LogFormat::parse("%(message)1000.1000s").is_ok());
    assert!(
        LogFormat::parse("%(a(b))s")
            .unwrap_err()
            .to_string()
            .contains("unknown field `a(b)`")
    );
}

#[test]
fn parse_keeps_the_text_and_knows_its_fields() {
    let f = LogFormat::parse("%(asctime)s %(message)s").unwrap();
    assert_eq!(f.as_str(), "%(asctime)s %(message)s");
    assert_eq!(f.to_string(), "%(asctime)s %(message)s");
    assert!(f.uses(LogField::Asctime) && f.uses(LogField::Message));
    assert!(!f.uses(LogField::Thread));
    assert_eq!(
        LogFormat::default().as_str(),
        super::super::DEFAULT_LOG_FORMAT
    );
    for (name, field) in FIELDS {
        assert_eq!(LogField::from_name(name), Some(*field));
        assert_eq!(field.name(), *name);
    }
}

/// The layout barman-rs wrote before `log_format` was read: the default
/// format must reproduce it byte for byte.
fn old_layout(time: &jiff::Zoned, pid: u32, name: &str, level: &str, message: &str) -> String {
    format!(
        "{},{:03} [{}] {} {}: {}",
        time.strftime("%Y-%m-%d %H:%M:%S"),
        time.subsec_nanosecond() / 1_000_000,
        pid,
        name,
        level,
        message
    )
}

proptest! {
    #[test]
    fn default_format_is_the_old_layout(
        second in -2_000_000_000i64..8_000_000_000,
        nanosecond in 0i32..1_000_000_000,
        offset_minutes in -12 * 60i32..14 * 60,
        pid in any::<u32>(),
        name in "[a-z][a-z0-9_.-]{0,30}",
        level in prop::sample::select(vec![
            (LogLevel::Debug, "DEBUG"),
            (LogLevel::Info, "INFO"),
            (LogLevel::Warning, "WARNING"),
            (LogLevel::Error, "ERROR"),
        ]),
        message in any::<String>(),
    ) {
        let offset = jiff::tz::Offset::from_seconds(offset_minutes * 60).unwrap();
        let time = jiff::Timestamp::new(second, nanosecond)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::fixed(offset));
        let r = LogRecord {
            process: pid,
            name: &name,
            level: level.0,
            ..record(&time, &message)
        };
        let mut out = String::new();
        LogFormat::default().render(&r, &mut out);
        prop_assert_eq!(out, old_layout(&time, pid, &name, level.1, &message));
    }

    /// Any text either parses or is refused; what parses renders, and
    /// its literal text comes out as written (`%%` as `%`).
    #[test]
    fn any_text_parses_or_is_refused(text in "(%|\\(|\\)|[a-zA-Z]|[-+ #0-9.*]|%\\(message\\)|é){0,40}") {
        if let Ok(f) = LogFormat::parse(&text) {
            let time = utc(1_732_248_910, 5);
            let mut out = String::new();
            f.render(&record(&time, "m"), &mut out);
            prop_assert!(out.len() <= 64 * (text.len() + 1) + 2 * MAX_LOG_FORMAT_WIDTH * text.len());
        }
    }

    #[test]
    fn literal_text_is_kept(text in "[^%]{0,40}") {
        let f = LogFormat::parse(&format!("{text}%%%(message)s{text}")).unwrap();
        let time = utc(0, 0);
        let mut out = String::new();
        f.render(&record(&time, "m"), &mut out);
        prop_assert_eq!(out, format!("{text}%m{text}"));
    }
}
