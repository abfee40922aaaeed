#include <sqlite3.h>

/// `sqlite3_config` is variadic, which Swift cannot call. Memory statistics take a global mutex
/// on every SQLite allocation (dozens per ledger commit); nothing reads them. Call before the
/// first connection opens; SQLITE_MISUSE after.
static inline int tokenctl_sqlite3_disable_memory_statistics(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
