//! Continuous WAL archiving: receiving (`put-wal`), archiving
//! (`archive-wal`), serving (`get-wal`) and re-indexing (`rebuild-xlogdb`).
//!
//! The rule above all: a WAL file acknowledged to PostgreSQL is durable, and
//! an archived WAL is never replaced by different content. Every file is
//! checked before it enters the archive ([`inspect`](inspect::inspect): full
//! segment size, page header of this segment from this cluster), written to
//! a temporary file, fsync'ed, linked into place without replacing anything,
//! and its directory fsync'ed.

pub mod archiver;
pub mod get_wal;
pub mod inspect;
pub mod put_wal;
pub mod rebuild;
pub mod store;

pub use archiver::{
    ArchiveObserver, ArchiveOptions, ArchiveReport, Arriving, Landed, NoObserver, Outcome,
    Processed, Source, StopArchiving, Stopped, archive_wal, streaming_batch,
};
pub use get_wal::{Located, candidates, locate, peek, vanished, write_wal, write_wal_to_dir};
pub use inspect::{Inspection, WalExpectations, read_history};
pub use put_wal::{PutWalOptions, Received, ReceivedWal, put_wal_file, put_wal_stream};
pub use rebuild::rebuild_xlogdb;
pub use store::ErrorKind;
