/* log.c: JSON or text lines on stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_LEVEL_INFO;
static bool as_json = true;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_level level, bool json)
{
    min_level = level;
    as_json = json;
}

bool log_enabled(enum log_level level)
{
    return level >= min_level;
}

/* Appends s to out as the inside of a JSON string, truncating at the end. */
static size_t json_escape(char *out, size_t cap, size_t pos, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    for (; *s && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[pos++] = '\\';
            out[pos++] = (char)c;
        } else if (c == '\n') {
            out[pos++] = '\\';
            out[pos++] = 'n';
        } else if (c < 0x20) {
            memcpy(out + pos, "\\u00", 4);
            out[pos + 4] = hex[c >> 4];
            out[pos + 5] = hex[c & 15];
            pos += 6;
        } else {
            out[pos++] = (char)c;
        }
    }
    return pos;
}

static size_t put(char *out, size_t cap, size_t pos, const char *s)
{
    size_t n = strlen(s);
    if (pos + n >= cap)
        n = cap - pos - 1;
    memcpy(out + pos, s, n);
    return pos + n;
}

void log_emit(enum log_level level, const char *request_id, const char *fmt, ...)
{
    char msg[2048], line[4096], ts[96];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    size_t pos = 0;

    if (level < min_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(tv.tv_usec / 1000));

    if (as_json) {
        pos = put(line, sizeof(line), pos, "{\"ts\":\"");
        pos = put(line, sizeof(line), pos, ts);
        pos = put(line, sizeof(line), pos, "\",\"level\":\"");
        pos = put(line, sizeof(line), pos, level_names[level]);
        pos = put(line, sizeof(line), pos, "\",\"msg\":\"");
        pos = json_escape(line, sizeof(line), pos, msg);
        if (request_id) {
            pos = put(line, sizeof(line), pos, "\",\"request_id\":\"");
            pos = json_escape(line, sizeof(line), pos, request_id);
        }
        pos = put(line, sizeof(line), pos, "\"}\n");
    } else {
        pos = (size_t)snprintf(line, sizeof(line), "%s %-5s %s%s%s\n", ts, level_names[level],
                               request_id ? request_id : "", request_id ? " " : "", msg);
        if (pos >= sizeof(line))
            pos = sizeof(line) - 1;
    }
    /* One write per line so lines from several processes do not interleave. */
    if (write(STDERR_FILENO, line, pos) < 0)
        return;
}
