/* The SQLite floor under the ledger writer: the same INSERT into the same `calls` table (read
 * from a ledger tokenctl created), from C, with nothing else: no rollups, no retry tracking, no
 * Swift. Settings as the writer's (WAL, synchronous=NORMAL, no auto-checkpoint, memory
 * statistics off). What the writer spends above this is ours; below it, only a different
 * schema or engine can go.
 * Usage: floor LEDGER ROWS ROWS_PER_COMMIT [drop-secondary-indexes: 0|1] */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void run(sqlite3 *db, const char *sql) {
    char *error = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &error) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, error);
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: floor LEDGER ROWS ROWS_PER_COMMIT [0|1]\n"); return 2; }
    long rows = atol(argv[2]), perCommit = atol(argv[3]);
    int dropSecondary = argc > 4 && atoi(argv[4]);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3 *db;
    if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        fprintf(stderr, "open %s: %s\n", argv[1], sqlite3_errmsg(db));
        return 1;
    }
    run(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=-65536");
    if (dropSecondary) run(db, "DROP INDEX calls_started_at; DROP INDEX calls_user_started_at; DROP INDEX calls_client_request_id");

    /* The columns of `calls` as they are, each bound with a value of its declared type. */
    char columns[4096] = "", params[2048] = "";
    char types[64];
    int count = 0;
    sqlite3_stmt *info;
    sqlite3_prepare_v2(db, "SELECT name, type FROM pragma_table_info('calls')", -1, &info, NULL);
    while (sqlite3_step(info) == SQLITE_ROW && count < 64) {
        const char *name = (const char *)sqlite3_column_text(info, 0);
        types[count] = strcmp((const char *)sqlite3_column_text(info, 1), "TEXT") == 0 ? 't' : 'i';
        if (strcmp(name, "id") == 0) types[count] = 'I';
        if (strcmp(name, "request_id") == 0) types[count] = 'R';
        if (strcmp(name, "error_message") == 0) types[count] = 'n';
        snprintf(columns + strlen(columns), sizeof columns - strlen(columns), "%s%s", count ? ", " : "", name);
        snprintf(params + strlen(params), sizeof params - strlen(params), "%s?%d", count ? ", " : "", count + 1);
        count++;
    }
    sqlite3_finalize(info);
    char sql[8192];
    snprintf(sql, sizeof sql, "INSERT INTO calls (%s) VALUES (%s)", columns, params);
    sqlite3_stmt *insert, *begin, *commit;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &insert, NULL) != SQLITE_OK) {
        fprintf(stderr, "prepare: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    sqlite3_prepare_v3(db, "BEGIN IMMEDIATE", -1, SQLITE_PREPARE_PERSISTENT, &begin, NULL);
    sqlite3_prepare_v3(db, "COMMIT", -1, SQLITE_PREPARE_PERSISTENT, &commit, NULL);

    double wall = seconds(CLOCK_MONOTONIC), cpu = seconds(CLOCK_PROCESS_CPUTIME_ID);
    unsigned long long start = 1764000000000000ULL, state = 2025;
    for (long i = 0; i < rows;) {
        if (sqlite3_step(begin) != SQLITE_DONE) {
            fprintf(stderr, "begin: %s\n", sqlite3_errmsg(db));
            return 1;
        }
        sqlite3_reset(begin);
        for (long j = 0; j < perCommit && i < rows; j++, i++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            char id[40], requestId[40];
            /* As the gateway makes them: the time in µs, then random bits. */
            snprintf(id, sizeof id, "%016llx%016llx", start + i * 50, state);
            snprintf(requestId, sizeof requestId, "req_%016llx%08llx", start + i * 50, state >> 32);
            for (int c = 0; c < count; c++) {
                switch (types[c]) {
                case 'I': sqlite3_bind_text(insert, c + 1, id, -1, SQLITE_TRANSIENT); break;
                case 'R': sqlite3_bind_text(insert, c + 1, requestId, -1, SQLITE_TRANSIENT); break;
                case 't': sqlite3_bind_text(insert, c + 1, "user-0042", -1, SQLITE_TRANSIENT); break;
                case 'n': sqlite3_bind_null(insert, c + 1); break;
                default: sqlite3_bind_int64(insert, c + 1, (sqlite3_int64)(start + i * 50)); break;
                }
            }
            if (sqlite3_step(insert) != SQLITE_DONE) {
                fprintf(stderr, "insert: %s\n", sqlite3_errmsg(db));
                return 1;
            }
            sqlite3_reset(insert);
        }
        if (sqlite3_step(commit) != SQLITE_DONE) {
            fprintf(stderr, "commit: %s\n", sqlite3_errmsg(db));
            return 1;
        }
        sqlite3_reset(commit);
    }
    wall = seconds(CLOCK_MONOTONIC) - wall;
    cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu;
    printf("sqlite floor (%s): %ld rows, %ld per commit: %.0f rows/s, %.1f µs CPU per row, %.1f µs per commit\n",
           dropSecondary ? "id index only" : "all indexes", rows, perCommit, rows / wall, cpu * 1e6 / rows,
           wall * 1e6 * perCommit / rows);
    sqlite3_finalize(insert);
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    sqlite3_close(db);
    return 0;
}
