#define _GNU_SOURCE
#include "thread_name.h"

#include <pthread.h>
#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

void tokenctl_name_current_thread(const char *name) {
#if defined(__APPLE__)
    pthread_setname_np(name);
#else
    // A name over 15 bytes is refused (ERANGE): keep its first 15.
    char kept[16];
    int i = 0;
    for (; i < 15 && name[i]; i++) kept[i] = name[i];
    kept[i] = 0;
    pthread_setname_np(pthread_self(), kept);
#endif
}

int tokenctl_set_current_thread_nice(int nice) {
#if defined(__linux__)
    // Linux keeps a nice value per thread: PRIO_PROCESS with a thread id sets this thread's
    // alone. Raising it needs no privilege.
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
#else
    (void)nice;
    return 0;
#endif
}

int tokenctl_current_thread_nice(void) {
#if defined(__linux__)
    return getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
#else
    return 0;
#endif
}
