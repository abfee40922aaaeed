#define _GNU_SOURCE
#include "thread_name.h"

#include <pthread.h>

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
