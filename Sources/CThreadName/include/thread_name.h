#ifndef TOKENCTL_THREAD_NAME_H
#define TOKENCTL_THREAD_NAME_H

/// Names the calling thread as `top -H`, `perf` and `/proc` show it (Linux keeps 15 bytes).
/// In C because Swift's Glibc module hides `pthread_setname_np` (it is behind _GNU_SOURCE).
void tokenctl_name_current_thread(const char *name);

/// Sets the calling thread's nice value (Linux; elsewhere nothing). 0 on success, -1 and errno.
int tokenctl_set_current_thread_nice(int nice);

/// The calling thread's nice value (0 where threads have none of their own).
int tokenctl_current_thread_nice(void);

#endif
