/* json_write.c: see json_write.h. */
#include "core/json_write.h"

#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>
#include <string.h>

const char *json_write_compact(struct json_object *o, size_t *len)
{
    size_t n;
    const char *text = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);

    /* json-c answers NULL only when it cannot allocate: abort, as xmalloc does. */
    if (!text) {
        fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"json: out of memory\"}\n");
        abort();
    }
    if (len)
        *len = n;
    return text;
}

int json_write_append(struct buf *out, struct json_object *o)
{
    size_t n;
    const char *text = json_write_compact(o, &n);

    return buf_append(out, text, n);
}

/* Length of the UTF-8 sequence starting at s, or 0 when it is not valid. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n, i;

    if (s[0] < 0x80)
        return 1;
    n = s[0] >= 0xf0 && s[0] < 0xf8 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
    /* A NUL ends the loop too: it is not a continuation byte. */
    for (i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

size_t json_escape(char *out, size_t cap, const char **str)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)*str;
    size_t pos = 0;

    while (*s) {
        size_t n = utf8_len(s);

        if (*s == '"' || *s == '\\' || *s == '\n') {
            if (pos + 2 > cap)
                break;
            out[pos++] = '\\';
            out[pos++] = *s == '\n' ? 'n' : (char)*s;
            s++;
        } else if (*s < 0x20) {
            if (pos + 6 > cap)
                break;
            memcpy(out + pos, "\\u00", 4);
            out[pos + 4] = hex[*s >> 4];
            out[pos + 5] = hex[*s & 15];
            pos += 6;
            s++;
        } else if (n == 0) {
            if (pos + 1 > cap)
                break;
            out[pos++] = '?';
            s++;
        } else {
            if (pos + n > cap)
                break;
            memcpy(out + pos, s, n);
            pos += n;
            s += n;
        }
    }
    *str = (const char *)s;
    return pos;
}

int json_escape_buf(struct buf *b, const char *s)
{
    char chunk[256]; /* far more than the longest unit, \u00XX */
    int err = 0;

    while (*s && !err) {
        size_t n = json_escape(chunk, sizeof(chunk), &s);

        err = buf_append(b, chunk, n);
    }
    return err;
}
