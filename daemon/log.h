/* Daemon logging: one line per event on stderr, "vkresampled: LEVEL: message". */
#ifndef VKR_DAEMON_LOG_H
#define VKR_DAEMON_LOG_H

enum { VKR_LOG_ERROR = 0, VKR_LOG_WARN = 1, VKR_LOG_INFO = 2, VKR_LOG_DEBUG = 3 };

extern int vkr__log_level;   /* messages above this level are dropped; default VKR_LOG_INFO */

void vkr__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
