//! The on-disk catalog: backup.info, xlog.db, identity.json, keep marks, locks.
