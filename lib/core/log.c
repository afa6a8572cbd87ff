/* log.c: JSON or text lines on stderr. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/json_write.h"

static enum log_level min_level = LOG_LEVEL_INFO;
static bool as_json = true;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_level level, bool json)
{
    min_level = level;
    as_json = json;
}

/*
 * Appends s to out[pos..end) as the inside of a JSON string, as much as
 * fits whole (json_write.h); the new pos.
 */
static size_t put_escaped(char *out, size_t end, size_t pos, const char *s)
{
    return pos + json_escape(out + pos, end - pos, &s);
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
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));

    if (as_json) {
        /* The id first, into its own room, so a long message can never
         * push it or the closing brace out of the line. */
        char rid[160];
        size_t rid_len = request_id ? put_escaped(rid, sizeof(rid) - 1, 0, request_id) : 0;
        static const char tail[] = "\"}\n";

        pos = put(line, sizeof(line), pos, "{\"ts\":\"");
        pos = put(line, sizeof(line), pos, ts);
        pos = put(line, sizeof(line), pos, "\",\"level\":\"");
        pos = put(line, sizeof(line), pos, level_names[level]);
        pos = put(line, sizeof(line), pos, "\",\"msg\":\"");
        pos = put_escaped(line, sizeof(line) - rid_len - 32, pos, msg);
        if (request_id) {
            pos = put(line, sizeof(line), pos, "\",\"request_id\":\"");
            memcpy(line + pos, rid, rid_len);
            pos += rid_len;
        }
        memcpy(line + pos, tail, sizeof(tail) - 1);
        pos += sizeof(tail) - 1;
    } else {
        pos = (size_t)snprintf(line, sizeof(line), "%s %-5s %s%s%s\n", ts, level_names[level],
                               request_id ? request_id : "", request_id ? " " : "", msg);
        if (pos >= sizeof(line)) {
            pos = sizeof(line) - 1;
            line[pos - 1] = '\n'; /* cut, but still one line */
        }
    }
    /* One write per line so lines from several processes do not interleave. */
    if (write(STDERR_FILENO, line, pos) < 0)
        return;
}
