/*
 * log.h: one line per event on stderr, JSON by default
 * ({"ts":…,"level":…,"msg":…,"request_id":…}) or plain text. Global state is
 * set once at start by log_setup(); logging never allocates on the heap for
 * lines that fit 4 KiB and never blocks on anything but stderr itself.
 */
#pragma once

#include <stdbool.h>

#include "core/common.h"

enum log_level {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR,
};

void log_setup(enum log_level min_level, bool json);
/* request_id may be NULL. The message is escaped for JSON. */
void log_emit(enum log_level level, const char *request_id, const char *fmt, ...) PRINTF_LIKE(3, 4);

#define log_debug(...) log_emit(LOG_LEVEL_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_emit(LOG_LEVEL_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_emit(LOG_LEVEL_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_emit(LOG_LEVEL_ERROR, NULL, __VA_ARGS__)
