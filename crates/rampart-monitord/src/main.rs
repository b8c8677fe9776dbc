//! rampart-monitord: see the library docs.

fn main() {}
