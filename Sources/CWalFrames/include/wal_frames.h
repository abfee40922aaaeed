#ifndef TOKENCTL_WAL_FRAMES_H
#define TOKENCTL_WAL_FRAMES_H

/// The name of a SQLite VFS that is the default one ("unix") except that the WAL frames of a
/// commit reach the file in one write instead of two per frame (its 24-byte header, then its
/// page). Open the ledger's writing connection with it; the files are the same as the default
/// VFS writes them.
#define TOKENCTL_WAL_FRAMES_VFS "tokenctl-wal-frames"

/// Registers the VFS (not as the default); SQLITE_OK, also when it is already registered.
int tokenctl_wal_frames_register(void);

#endif
