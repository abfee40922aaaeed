// Linked into the tokenctl executable only (not the libraries or the tests), with mimalloc,
// which takes malloc and free for the whole process: less CPU per call than glibc's allocator,
// whose slow path (`_int_malloc`, `malloc_consolidate`) buffers made on one thread and freed on
// another kept it in (bench/README.md).
#include <mimalloc.h>
#include "mimalloc_options.h"

// Pages a thread frees go back to the OS at once, not after mimalloc's default 25 ms, which an
// idle thread never comes back to: closed streams' memory is returned (no cost under steady
// load, where no page empties). Set before main: before any thread of ours starts (mimalloc
// reads it when a page empties, so what shared libraries' constructors allocated is covered).
__attribute__((constructor)) static void tokenctl_mimalloc_options(void) {
    mi_option_set(mi_option_decommit_delay, 0);
}
