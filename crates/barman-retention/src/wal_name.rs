//! What retention reads from a WAL file name.

/// The timeline of a WAL file name: its first 8 characters read as hex.
pub(crate) fn timeline_of(name: &str) -> Option<u32> {
    let digits = name.get(..8)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}
