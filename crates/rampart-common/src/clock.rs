//! Wall-clock time as the daemons store it: Unix seconds (UTC). A clock before 1970 reads as 0 ("none").

/// Now, in Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
