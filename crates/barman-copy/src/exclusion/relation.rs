//! Relation file names, as PostgreSQL's `basebackup.c` recognises them, and
//! which directories hold them.

/// Fork suffixes other than the main fork (`forkNames[1..]` in PostgreSQL).
const FORK_NAMES: [&str; 3] = ["fsm", "vm", "init"];

/// Length of the leading run of ASCII digits.
fn digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// Whether `s` is a non-empty run of ASCII digits.
pub(super) fn all_digits(s: &str) -> bool {
    !s.is_empty() && digits(s) == s.len()
}

/// Parses `_<fork>` and/or `.<segment>` after a relation number; returns the
/// fork name (`""` for the main fork) if the rest is exactly that.
fn fork_and_segment(rest: &str) -> Option<&str> {
    let (fork, rest) = match rest.strip_prefix('_') {
        Some(after) => {
            let fork = FORK_NAMES.into_iter().find(|f| after.starts_with(f))?;
            (fork, &after[fork.len()..])
        }
        None => ("", rest),
    };
    let ok = match rest.strip_prefix('.') {
        Some(segment) => all_digits(segment),
        None => rest.is_empty(),
    };
    ok.then_some(fork)
}

/// PostgreSQL's `looks_like_temp_rel_name`: `t<backend>_<relnumber>[_<fork>][.<segment>]`.
pub(super) fn is_temp_relation(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('t') else {
        return false;
    };
    let backend = digits(rest);
    let Some(rest) = rest[backend..].strip_prefix('_').filter(|_| backend > 0) else {
        return false;
    };
    let relnumber = digits(rest);
    relnumber > 0 && fork_and_segment(&rest[relnumber..]).is_some()
}

/// PostgreSQL's `parse_filename_for_nontemp_relation`: `<relnumber>[_<fork>][.<segment>]`.
/// Returns the relation number and the fork name (`""` for the main fork).
pub(super) fn parse_relation(name: &str) -> Option<(&str, &str)> {
    let relnumber = digits(name);
    if relnumber == 0 {
        return None;
    }
    let fork = fork_and_segment(&name[relnumber..])?;
    Some((&name[..relnumber], fork))
}

/// Whether `name` is a tablespace version directory, `PG_<major>_<catversion>`
/// (`PG_15_202209061`, or `PG_9.6_201608131` before version 10).
fn is_tablespace_version_dir(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("PG_") else {
        return false;
    };
    let Some((major, catversion)) = rest.split_once('_') else {
        return false;
    };
    let major_ok = match major.split_once('.') {
        Some((a, b)) => all_digits(a) && all_digits(b),
        None => all_digits(major),
    };
    major_ok && all_digits(catversion)
}

/// Whether the directory made of `components` is a database directory, the
/// only place relation files live: `base/<dboid>`, or `<dboid>` under a
/// tablespace version directory (`pg_tblspc/<oid>/PG_15_202209061/<dboid>`,
/// or `PG_15_202209061/<dboid>` when a tablespace is walked from its own root).
pub(super) fn is_database_dir(components: &[&str]) -> bool {
    match components {
        ["base", dboid] => all_digits(dboid),
        [.., version, dboid] => all_digits(dboid) && is_tablespace_version_dir(version),
        _ => false,
    }
}

/// Whether the directory made of `components` holds relation files:
/// a database directory or `global`.
pub(super) fn is_relation_dir(components: &[&str]) -> bool {
    components == ["global"] || is_database_dir(components)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_relation_names() {
        for yes in [
            "t3_16384",
            "t12_16384_fsm",
            "t3_16384_vm",
            "t3_16384_init",
            "t3_16384.1",
            "t3_16384_fsm.12",
        ] {
            assert!(is_temp_relation(yes), "{yes}");
        }
        for no in [
            "16384",
            "t_16384",
            "t3_",
            "t3",
            "t3_16384_main",
            "t3_16384_xyz",
            "t3_16384.",
            "t3_16384.1a",
            "T3_16384",
            "t3x_16384",
            "t3_16384_fsm_vm",
        ] {
            assert!(!is_temp_relation(no), "{no}");
        }
    }

    #[test]
    fn relation_names() {
        assert_eq!(parse_relation("16384"), Some(("16384", "")));
        assert_eq!(parse_relation("16384.2"), Some(("16384", "")));
        assert_eq!(parse_relation("16384_fsm"), Some(("16384", "fsm")));
        assert_eq!(parse_relation("16384_vm.1"), Some(("16384", "vm")));
        assert_eq!(parse_relation("16384_init"), Some(("16384", "init")));
        for no in [
            "PG_VERSION",
            "pg_filenode.map",
            "t3_16384",
            "16384_main",
            "16384x",
            "_fsm",
            "16384.",
        ] {
            assert_eq!(parse_relation(no), None, "{no}");
        }
    }

    #[test]
    fn database_dirs() {
        assert!(is_database_dir(&["base", "16384"]));
        assert!(is_database_dir(&[
            "pg_tblspc",
            "16385",
            "PG_15_202209061",
            "16384"
        ]));
        assert!(is_database_dir(&["PG_9.6_201608131", "1"]));
        assert!(!is_database_dir(&["base"]));
        assert!(!is_database_dir(&["base", "pgsql_tmp"]));
        assert!(!is_database_dir(&["global"]));
        assert!(!is_database_dir(&["pg_tblspc", "16385", "PG_15", "16384"]));
        assert!(!is_database_dir(&["x", "base", "16384"]));
        assert!(is_relation_dir(&["global"]));
        assert!(!is_relation_dir(&["pg_wal"]));
    }
}
