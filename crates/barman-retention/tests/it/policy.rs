//! Property tests: every policy prints to text that parses back to itself,
//! and parsing is insensitive to case and spacing as Barman's regexes are.

use barman_retention::{RetentionPolicy, WindowUnit};
use proptest::prelude::*;

fn unit() -> impl Strategy<Value = WindowUnit> {
    prop_oneof![
        Just(WindowUnit::Days),
        Just(WindowUnit::Weeks),
        Just(WindowUnit::Months)
    ]
}

fn policy() -> impl Strategy<Value = RetentionPolicy> {
    prop_oneof![
        (1..=u32::MAX).prop_map(RetentionPolicy::Redundancy),
        (1..=u32::MAX, unit())
            .prop_map(|(count, unit)| RetentionPolicy::RecoveryWindow { count, unit }),
    ]
}

/// Randomly lower-cases letters and widens the gaps between words.
fn mangle(text: &str, lower: &[bool], gaps: &[usize]) -> String {
    let mut out = String::new();
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push_str(&" ".repeat(1 + gaps[i % gaps.len()]));
        }
        for (j, c) in word.chars().enumerate() {
            if lower[j % lower.len()] {
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
    }
    out
}

proptest! {
    #[test]
    fn display_then_parse_is_identity(p in policy()) {
        let printed = p.to_string();
        let parsed: RetentionPolicy = printed.parse().unwrap();
        prop_assert_eq!(parsed, p);
        // Printing is canonical: printing the parsed value gives the same text.
        prop_assert_eq!(parsed.to_string(), printed);
    }

    #[test]
    fn parse_ignores_case_and_spacing(
        p in policy(),
        lower in proptest::collection::vec(any::<bool>(), 1..8),
        gaps in proptest::collection::vec(0usize..3, 1..5),
        lead in 0usize..3,
        trail in 0usize..3,
    ) {
        let text = format!("{}{}{}", " ".repeat(lead), mangle(&p.to_string(), &lower, &gaps), "\t".repeat(trail));
        prop_assert_eq!(text.parse::<RetentionPolicy>().unwrap(), p);
    }

    #[test]
    fn singular_units_parse_to_the_plural(count in 1..=u32::MAX, u in unit()) {
        let singular = match u {
            WindowUnit::Days => "DAY",
            WindowUnit::Weeks => "WEEK",
            WindowUnit::Months => "MONTH",
        };
        let parsed: RetentionPolicy = format!("RECOVERY WINDOW OF {count} {singular}").parse().unwrap();
        prop_assert_eq!(parsed, RetentionPolicy::RecoveryWindow { count, unit: u });
    }

    #[test]
    fn garbage_never_parses_and_never_panics(s in "\\PC{0,40}") {
        let upper = s.trim().to_ascii_uppercase();
        let looks_valid = upper.starts_with("REDUNDANCY") || upper.starts_with("RECOVERY");
        if let Ok(p) = s.parse::<RetentionPolicy>() {
            prop_assert!(looks_valid, "{s:?} parsed as {p}");
        }
    }
}
