//! Durable file-system helpers: atomic writes, directory fsync, modes.
