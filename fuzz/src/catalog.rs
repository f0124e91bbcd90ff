//! The catalog files: `backup.info` (with the Python literals in it and
//! the JSON form a passive node reads from its primary) and `xlog.db`.

use std::path::Path;

use barman_core::catalog::{BackupInfo, PyValue, XlogDb};
use barman_core::sync::PrimaryInfo;

/// `backup.info` and its neighbours. The first byte chooses what the rest
/// is: a `backup.info` file (every typed field is read, and writing it
/// back and reading that again gives the same file), a Python literal
/// (its `repr` reads back equal), or a primary's `sync-info` answer.
pub fn backup_info(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 3 {
        0 => backup_info_file(&text),
        1 => python_literal(&text),
        _ => {
            let _ = PrimaryInfo::parse(&text, "pg");
        }
    }
}

fn backup_info_file(text: &str) {
    let id = "20261122T041510".parse().expect("a backup id");
    let origin = Path::new("/fuzz/meta/20261122T041510-backup.info");
    let Ok(info) = BackupInfo::parse(text, id, origin) else {
        return;
    };
    let _ = info.status();
    let _ = info.begin_time();
    let _ = info.end_time();
    let _ = info.begin_wal();
    let _ = info.end_wal();
    let _ = info.begin_xlog();
    let _ = info.end_xlog();
    let _ = info.begin_offset();
    let _ = info.end_offset();
    let _ = info.timeline();
    let _ = info.size();
    let _ = info.deduplicated_size();
    let _ = info.cluster_size();
    let _ = info.version();
    let _ = info.xlog_segment_size();
    let _ = info.tablespaces();
    let _ = info.included_files();
    let _ = info.backup_label();
    let _ = info.copy_stats();
    let _ = info.parent_backup_id();
    let _ = info.children_backup_ids();
    let _ = info.is_incremental();
    let _ = info.backup_type();
    let _ = info.to_json();
    if let Ok(serde_json::Value::Object(json)) = info.to_sync_json() {
        let _ = BackupInfo::from_sync_json("pg", info.backup_id(), &json);
    }
    let written = info.to_file_string();
    let again = BackupInfo::parse(&written, info.backup_id().clone(), origin)
        .unwrap_or_else(|e| panic!("a written backup.info does not read back: {e}\n{written}"));
    assert_eq!(
        again.to_file_string(),
        written,
        "a backup.info changes when written again"
    );
}

fn python_literal(text: &str) {
    let Ok(value) = PyValue::parse(text) else {
        return;
    };
    let _ = value.to_json();
    let repr = value.to_repr();
    let again = PyValue::parse(&repr)
        .unwrap_or_else(|e| panic!("the repr of a literal does not parse: {e}: {repr}"));
    assert_eq!(again.to_repr(), repr, "a repr changes when parsed again");
}

/// `xlog.db`: every line is parsed, and the catalogue written back reads
/// back equal. The same bytes as a file: cutting its torn tail leaves a
/// prefix ending with a newline.
pub fn xlog_db(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let origin = Path::new("/fuzz/pg-xlog.db");
    if let Ok(entries) = XlogDb::parse(&text, origin) {
        let rendered = XlogDb::render(&entries);
        let again = XlogDb::parse(&rendered, origin)
            .unwrap_or_else(|e| panic!("a rendered xlog.db does not read back: {e}"));
        assert_eq!(again, entries, "xlog.db entries change when written");
    }
    let sandbox = crate::sandbox();
    let path = sandbox.path().join("pg-xlog.db");
    std::fs::write(&path, data).expect("write the sandbox's xlog.db");
    let db = XlogDb::new(&path);
    let _ = db.contains("000000010000000000000001");
    let removed = db.repair_tail().expect("repair a file in the sandbox");
    let kept = std::fs::read(&path).expect("read the sandbox's xlog.db");
    assert!(
        data.starts_with(&kept),
        "repair_tail changed the kept lines"
    );
    assert_eq!(kept.len() as u64 + removed, data.len() as u64);
    assert!(
        kept.is_empty() || kept.ends_with(b"\n"),
        "repair_tail left a torn line"
    );
}
