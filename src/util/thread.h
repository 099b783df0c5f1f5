/* Thread names, so `top -H`, `perf` and /proc/<pid>/task/<tid>/comm tell
 * authd's threads apart (an operator's first question under load is which
 * thread burns the CPU). */
#ifndef AUTHD_UTIL_THREAD_H
#define AUTHD_UTIL_THREAD_H

/* Names the calling thread; the kernel keeps the first 15 bytes. */
void thread_set_name(const char *name);

#endif
