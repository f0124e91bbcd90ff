//! `barman receive-wal`: WAL streaming into `streaming/` over the
//! replication protocol (no `pg_receivewal`), and the pieces `archive-wal`
//! and `check` need from it.

pub mod stream;
pub mod writer;

pub use stream::{ReceiveAction, local_position, receive_wal};
pub use writer::SegmentWriter;
