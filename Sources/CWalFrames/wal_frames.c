// A VFS shim over SQLite's default VFS that writes the frames a commit appends to the WAL in
// one write. SQLite writes a frame as two writes (walWriteOneFrame: the 24-byte header, then the
// page right after it), so a commit of n pages costs 2n system calls; held and joined, it costs
// one (one per 31 pages of 4 KiB in a large transaction: `runLimit`).
//
// Only files opened as WAL are wrapped. A 24-byte write starts a run only when it continues the
// write just before it on the file (frames are appended one after the other, the first right
// after the WAL's header). The run then grows while each call writes right after it, a page after
// its header and a header after a page, and goes to the file in one write once it ends with the
// commit frame (its header gives the database's size; other frames' give 0) or reaches
// `runLimit`. Anything else (another write, a read, a sync, a truncate, a size, a close, a file
// control) writes the run first, so every call sees the file exactly as without the shim.
// Frames a transaction larger than the cache spills before COMMIT may wait in the run until its
// next call; they are not committed, and no other connection reads them. If that transaction
// rolls back instead, they are dropped when SQLite releases the WAL's write lock (through the
// database's file, which is wrapped for that alone): written after that, they could overwrite
// frames another connection committed at the same offsets meanwhile.
// Headers SQLite rewrites in place at COMMIT (after such a transaction overwrote frames it had
// spilled) follow a read of their frame, not a write, so they go to the file at once: the last of
// them is the commit frame's, and no page follows it. So a commit's frames are all in the file
// when the function writing them returns, before the shared index says they exist, and other
// processes, which read the WAL through their own files and that index, never miss one.
#include "wal_frames.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum {
    frameHeaderSize = 24,
    /// The most a run holds: SQLite's unix VFS writes at most this many bytes in one call (its
    /// seekAndWriteFd masks the count with 0x1ffff; a longer write is cut, then fails as a full
    /// disk). 31 frames of 4 KiB pages; a run that could not take one more frame is written.
    runLimit = 0x1ffff,
};

typedef struct WalFile {
    sqlite3_file base;
    sqlite3_file *real;            // the default VFS's file, allocated right after this struct
    unsigned char *run;            // frames appended and not yet written, from runOffset
    int runSize;
    int runCapacity;
    sqlite3_int64 runOffset;
    int awaitingPage;              // the run ends with a frame's header; its page comes next
    int commitFrame;               // that header (or the last one) is the commit frame's
    int afterWrite;                // the last call on the file was a write, ending at `writtenEnd`
    sqlite3_int64 writtenEnd;
    struct DbFile *db;             // the database's file, if opened through this VFS
    int failed;                    // a run's write failed with this code: see `writeRun`
} WalFile;

/// The main database's file, wrapped to see SQLite release the WAL's write lock: shared-memory
/// lock 0, which SQLite takes and releases through this file, never through the WAL's.
typedef struct DbFile {
    sqlite3_file base;
    sqlite3_file *real;            // the default VFS's file, allocated right after this struct
    WalFile *wal;                  // its WAL's file while both are open
} DbFile;

// Both wrappers start with their own `base` and the wrapped file: the plain forwarders below
// serve either.
_Static_assert(offsetof(WalFile, real) == offsetof(DbFile, real), "wrappers share their head");
#define REAL(file) (((WalFile *)(file))->real)

static int forwardRead(sqlite3_file *file, void *data, int amount, sqlite3_int64 offset) {
    return REAL(file)->pMethods->xRead(REAL(file), data, amount, offset);
}
static int forwardWrite(sqlite3_file *file, const void *data, int amount, sqlite3_int64 offset) {
    return REAL(file)->pMethods->xWrite(REAL(file), data, amount, offset);
}
static int forwardTruncate(sqlite3_file *file, sqlite3_int64 size) {
    return REAL(file)->pMethods->xTruncate(REAL(file), size);
}
static int forwardSync(sqlite3_file *file, int flags) {
    return REAL(file)->pMethods->xSync(REAL(file), flags);
}
static int forwardFileSize(sqlite3_file *file, sqlite3_int64 *size) {
    return REAL(file)->pMethods->xFileSize(REAL(file), size);
}
static int forwardLock(sqlite3_file *file, int level) {
    return REAL(file)->pMethods->xLock(REAL(file), level);
}
static int forwardUnlock(sqlite3_file *file, int level) {
    return REAL(file)->pMethods->xUnlock(REAL(file), level);
}
static int forwardCheckReservedLock(sqlite3_file *file, int *out) {
    return REAL(file)->pMethods->xCheckReservedLock(REAL(file), out);
}
static int forwardFileControl(sqlite3_file *file, int op, void *arg) {
    return REAL(file)->pMethods->xFileControl(REAL(file), op, arg);
}
static int forwardSectorSize(sqlite3_file *file) {
    return REAL(file)->pMethods->xSectorSize(REAL(file));
}
static int forwardDeviceCharacteristics(sqlite3_file *file) {
    return REAL(file)->pMethods->xDeviceCharacteristics(REAL(file));
}
static int forwardShmMap(sqlite3_file *file, int region, int size, int extend, void volatile **out) {
    return REAL(file)->pMethods->xShmMap(REAL(file), region, size, extend, out);
}
static int forwardShmLock(sqlite3_file *file, int offset, int n, int flags) {
    return REAL(file)->pMethods->xShmLock(REAL(file), offset, n, flags);
}
static void forwardShmBarrier(sqlite3_file *file) {
    REAL(file)->pMethods->xShmBarrier(REAL(file));
}
static int forwardShmUnmap(sqlite3_file *file, int deleteFlag) {
    return REAL(file)->pMethods->xShmUnmap(REAL(file), deleteFlag);
}
static int forwardFetch(sqlite3_file *file, sqlite3_int64 offset, int amount, void **out) {
    return REAL(file)->pMethods->xFetch(REAL(file), offset, amount, out);
}
static int forwardUnfetch(sqlite3_file *file, sqlite3_int64 offset, void *page) {
    return REAL(file)->pMethods->xUnfetch(REAL(file), offset, page);
}

static sqlite3_vfs walFramesVfs;
static sqlite3_vfs *defaultVfs;

/// Writes the run, if any. Once that fails, every later call fails the same way until the
/// transaction ends (`dropRun`): frames SQLite counts as written are not in the file, and a run
/// written from a read or a size query could fail where SQLite does not end the transaction for
/// it (with the default VFS the spill itself fails, and the transaction with it).
static int writeRun(WalFile *f) {
    if (f->failed) return f->failed;
    if (f->runSize == 0) return SQLITE_OK;
    int size = f->runSize;
    f->runSize = 0;
    f->awaitingPage = 0;
    f->commitFrame = 0;
    int rc = f->real->pMethods->xWrite(f->real, f->run, size, f->runOffset);
    if (rc != SQLITE_OK) f->failed = rc;
    return rc;
}

/// Writes the run, and forgets the last write: called first by every method but xWrite.
static int writeHeld(WalFile *f) {
    f->afterWrite = 0;
    return writeRun(f);
}

/// A write reached the file: the next 24-byte write right after it is a frame's header.
static int wrote(WalFile *f, int rc, sqlite3_int64 end) {
    f->afterWrite = rc == SQLITE_OK;
    f->writtenEnd = end;
    return rc;
}

/// Adds `amount` bytes to the run; 0 if there is no memory for them.
static int addToRun(WalFile *f, const void *data, int amount) {
    int size = f->runSize + amount;
    if (size > runLimit) return 0;
    if (size > f->runCapacity) {
        int capacity = size > 2 * f->runCapacity ? size : 2 * f->runCapacity;
        unsigned char *grown = realloc(f->run, (size_t)capacity);
        if (!grown) return 0;
        f->run = grown;
        f->runCapacity = capacity;
    }
    memcpy(f->run + f->runSize, data, (size_t)amount);
    f->runSize = size;
    return 1;
}

/// Whether a frame header is a commit frame's: the database's size in pages after the commit,
/// big-endian at bytes 4-7, is 0 in every other frame.
static int isCommitHeader(const unsigned char *header) {
    return (header[4] | header[5] | header[6] | header[7]) != 0;
}

static int walWrite(sqlite3_file *file, const void *data, int amount, sqlite3_int64 offset) {
    WalFile *f = (WalFile *)file;
    sqlite3_int64 end = offset + amount;
    if (f->runSize > 0 && offset == f->runOffset + f->runSize
        && (f->awaitingPage || amount == frameHeaderSize) && addToRun(f, data, amount)) {
        if (!f->awaitingPage) {
            f->awaitingPage = 1;
            f->commitFrame = isCommitHeader((const unsigned char *)data);
            return SQLITE_OK;
        }
        f->awaitingPage = 0;
        if (!f->commitFrame && f->runSize + frameHeaderSize + amount <= runLimit) return SQLITE_OK;
        return wrote(f, writeRun(f), end);
    }
    int appended = f->runSize == 0 && f->afterWrite && offset == f->writtenEnd;
    int rc = writeHeld(f);
    if (rc != SQLITE_OK) return rc;
    if (amount == frameHeaderSize && appended && addToRun(f, data, amount)) {
        f->runOffset = offset;
        f->awaitingPage = 1;
        f->commitFrame = isCommitHeader((const unsigned char *)data);
        return SQLITE_OK;
    }
    return wrote(f, f->real->pMethods->xWrite(f->real, data, amount, offset), end);
}

static int walClose(sqlite3_file *file) {
    WalFile *f = (WalFile *)file;
    if (f->db) f->db->wal = NULL;
    int rc = writeHeld(f);
    int closed = f->real->pMethods->xClose(f->real);
    free(f->run);
    f->run = NULL;
    return rc != SQLITE_OK ? rc : closed;
}

// The methods that touch the WAL's bytes write the run first, then forward.
#define FLUSHED(file) int rc = writeHeld((WalFile *)(file)); if (rc != SQLITE_OK) return rc

static int walRead(sqlite3_file *file, void *data, int amount, sqlite3_int64 offset) {
    FLUSHED(file);
    return forwardRead(file, data, amount, offset);
}
static int walTruncate(sqlite3_file *file, sqlite3_int64 size) {
    FLUSHED(file);
    return forwardTruncate(file, size);
}
static int walSync(sqlite3_file *file, int flags) {
    FLUSHED(file);
    return forwardSync(file, flags);
}
static int walFileSize(sqlite3_file *file, sqlite3_int64 *size) {
    FLUSHED(file);
    return forwardFileSize(file, size);
}
static int walLock(sqlite3_file *file, int level) {
    FLUSHED(file);
    return forwardLock(file, level);
}
static int walUnlock(sqlite3_file *file, int level) {
    FLUSHED(file);
    return forwardUnlock(file, level);
}
static int walCheckReservedLock(sqlite3_file *file, int *out) {
    FLUSHED(file);
    return forwardCheckReservedLock(file, out);
}
static int walFileControl(sqlite3_file *file, int op, void *arg) {
    FLUSHED(file);
    return forwardFileControl(file, op, arg);
}
static int walFetch(sqlite3_file *file, sqlite3_int64 offset, int amount, void **out) {
    FLUSHED(file);
    return forwardFetch(file, offset, amount, out);
}

/// The methods of version 3; `methodsOf` gives a file the version of the real file it wraps.
static const sqlite3_io_methods walMethods = {
    3, walClose, walRead, walWrite, walTruncate, walSync, walFileSize, walLock, walUnlock,
    walCheckReservedLock, walFileControl, forwardSectorSize, forwardDeviceCharacteristics,
    // SQLite calls the shared-memory methods on the database's file only; these touch no WAL byte.
    forwardShmMap, forwardShmLock, forwardShmBarrier, forwardShmUnmap, walFetch, forwardUnfetch,
};

/// The same methods, at versions 1, 2 and 3: SQLite calls the shared-memory methods (version 2)
/// and the memory-mapping ones (version 3) only if the file's version has them, so a wrapper
/// must not claim more than the real file has (the forwarding methods would call a NULL).
static sqlite3_io_methods walMethodsByVersion[3];

/// Forgets the run: its frames belong to a transaction that ended without committing them.
static void dropRun(WalFile *f) {
    f->failed = SQLITE_OK;
    f->runSize = 0;
    f->awaitingPage = 0;
    f->commitFrame = 0;
    f->afterWrite = 0;
}

// The database's file forwards every call; releasing lock 0 (the WAL's write lock) ends a write
// transaction. A commit has written its run by then (its commit frame's page did), so a run left
// holds frames of a transaction rolled back: they are dropped, never written. (In exclusive
// locking mode SQLite never releases that lock: no other connection writes then, and the ledger
// does not use it.)
static int dbClose(sqlite3_file *file) {
    DbFile *d = (DbFile *)file;
    if (d->wal) d->wal->db = NULL;
    return d->real->pMethods->xClose(d->real);
}
static int dbShmLock(sqlite3_file *file, int offset, int n, int flags) {
    DbFile *d = (DbFile *)file;
    if ((flags & SQLITE_SHM_UNLOCK) && offset == 0 && d->wal) dropRun(d->wal);
    return d->real->pMethods->xShmLock(d->real, offset, n, flags);
}

static const sqlite3_io_methods dbMethods = {
    3, dbClose, forwardRead, forwardWrite, forwardTruncate, forwardSync, forwardFileSize, forwardLock,
    forwardUnlock, forwardCheckReservedLock, forwardFileControl, forwardSectorSize,
    forwardDeviceCharacteristics, forwardShmMap, dbShmLock, forwardShmBarrier, forwardShmUnmap,
    forwardFetch, forwardUnfetch,
};
static sqlite3_io_methods dbMethodsByVersion[3];

/// The methods of `table`'s version closest to that of `real` (at most 3).
static const sqlite3_io_methods *methodsOf(sqlite3_io_methods table[3], const sqlite3_file *real) {
    int version = real->pMethods->iVersion;
    return &table[(version < 1 ? 1 : version > 3 ? 3 : version) - 1];
}

static int isDbFile(const sqlite3_file *file) {
    return file && file->pMethods >= dbMethodsByVersion && file->pMethods < dbMethodsByVersion + 3;
}

static int walFramesOpen(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *outFlags) {
    (void)vfs;
    if (flags & SQLITE_OPEN_MAIN_DB) {
        DbFile *d = (DbFile *)file;
        memset(d, 0, sizeof(DbFile));
        d->real = (sqlite3_file *)(d + 1);
        int rc = defaultVfs->xOpen(defaultVfs, name, d->real, flags, outFlags);
        // On failure the real file has no methods, and neither may ours (SQLite then never closes it).
        d->base.pMethods = (rc == SQLITE_OK && d->real->pMethods) ? methodsOf(dbMethodsByVersion, d->real) : NULL;
        return rc;
    }
    if (!(flags & SQLITE_OPEN_WAL)) return defaultVfs->xOpen(defaultVfs, name, file, flags, outFlags);
    WalFile *f = (WalFile *)file;
    memset(f, 0, sizeof(WalFile));
    f->real = (sqlite3_file *)(f + 1);
    int rc = defaultVfs->xOpen(defaultVfs, name, f->real, flags, outFlags);
    f->base.pMethods = (rc == SQLITE_OK && f->real->pMethods) ? methodsOf(walMethodsByVersion, f->real) : NULL;
    sqlite3_file *database = sqlite3_database_file_object(name);
    if (f->base.pMethods && isDbFile(database)) {
        f->db = (DbFile *)database;
        f->db->wal = f;
    }
    return rc;
}

int tokenctl_wal_frames_register(void) {
    if (sqlite3_vfs_find(TOKENCTL_WAL_FRAMES_VFS)) return SQLITE_OK;
    defaultVfs = sqlite3_vfs_find(NULL);
    if (!defaultVfs) return SQLITE_ERROR;
    for (int version = 1; version <= 3; version++) {
        walMethodsByVersion[version - 1] = walMethods;
        walMethodsByVersion[version - 1].iVersion = version;
        dbMethodsByVersion[version - 1] = dbMethods;
        dbMethodsByVersion[version - 1].iVersion = version;
    }
    walFramesVfs = *defaultVfs;
    walFramesVfs.zName = TOKENCTL_WAL_FRAMES_VFS;
    walFramesVfs.pNext = NULL;
    // Room for a wrapper and the default VFS's own file after it (other files use only the latter's part).
    int wrapper = sizeof(WalFile) > sizeof(DbFile) ? (int)sizeof(WalFile) : (int)sizeof(DbFile);
    walFramesVfs.szOsFile = wrapper + defaultVfs->szOsFile;
    walFramesVfs.xOpen = walFramesOpen;
    return sqlite3_vfs_register(&walFramesVfs, 0);
}
