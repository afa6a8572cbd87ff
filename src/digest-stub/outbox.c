/* stub_outbox.c: the connector's record of what it received. */
#include "outbox.h"

#include <string.h>

#include <json-c/json.h>

#include "core/json_strict.h"
#include "core/url.h"

#define SEGMENT_MAX 4096 /* one decoded path segment */
#define CONV_SHOWN 24    /* conversation id bytes on a stdout line */

/*
 * A decoded path segment (owned), or NULL when empty or malformed; the
 * outbox shows ids as digestd meant them, the raw path beside them.
 */
static char *decode_segment(const char *s, size_t len)
{
    struct buf b;

    buf_init(&b, SEGMENT_MAX);
    if (len == 0 || url_percent_decode(s, len, false, &b) != 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_take(&b);
}

void stub_record_parse_path(struct stub_record *rec, const char *method, const char *path)
{
    static const char conv_at[] = "/v3/conversations/", acts[] = "/activities";
    const char *id = strstr(path, conv_at) + sizeof(conv_at) - 1;
    const char *end = strchrnul(id, '/'), *aid;

    rec->method = strcmp(method, "PUT") == 0 ? "PUT" : "POST";
    rec->kind = "other";
    rec->conv = decode_segment(id, (size_t)(end - id));
    rec->activity_id = NULL;
    if (strncmp(end, acts, sizeof(acts) - 1) != 0)
        return;
    aid = end + sizeof(acts) - 1;
    if (*aid == '\0' && strcmp(rec->method, "POST") == 0) {
        rec->kind = "send";
    } else if (*aid == '/' && aid[1] && !strchr(aid + 1, '/')) {
        rec->activity_id = decode_segment(aid + 1, strlen(aid + 1));
        if (rec->activity_id)
            rec->kind = strcmp(rec->method, "PUT") == 0 ? "update" : "reply";
    }
}

int stub_record_line(const struct stub_record *rec, struct buf *out)
{
    size_t n = rec->conv ? strlen(rec->conv) : 0;
    int err;

    /* Cut long ids at a UTF-8 character boundary, then mark the cut. */
    if (n > CONV_SHOWN) {
        n = CONV_SHOWN;
        while (n > 0 && ((unsigned char)rec->conv[n] & 0xc0) == 0x80)
            n--;
    }
    err = buf_printf(out, "connector: %s %s conv=%.*s%s", rec->method, rec->kind, (int)n,
                     rec->conv ? rec->conv : "?",
                     rec->conv && n < strlen(rec->conv) ? "\xe2\x80\xa6" : "");
    if (!err && rec->activity_id)
        err = buf_printf(out, " activity=%s", rec->activity_id);
    if (!err)
        err = buf_printf(out, " card=%s", rec->card.kind);
    if (!err && rec->card.request_id[0])
        err = buf_printf(out, " requestId=%s", rec->card.request_id);
    if (!err && rec->status)
        err = buf_printf(out, " status=%d", rec->status);
    else if (!err)
        err = buf_append_str(out, " status=hang");
    return err;
}

void stub_record_free(struct stub_record *rec)
{
    xfree(rec->path);
    xfree(rec->conv);
    xfree(rec->activity_id);
    xfree(rec->auth);
    xfree(rec->body);
    xfree(rec->response_id);
}

void stub_outbox_init(struct stub_outbox *ob, size_t cap)
{
    memset(ob, 0, sizeof(*ob));
    ob->cap = cap;
    ob->ring = xcalloc(cap, sizeof(*ob->ring));
}

/*
 * The ring never grows: a benchmark posting for minutes must not make the
 * stub's memory climb, and tests read what is recent.
 */
void stub_outbox_add(struct stub_outbox *ob, struct stub_record *rec)
{
    if (ob->len == ob->cap) {
        stub_record_free(&ob->ring[ob->head]);
        ob->head = (ob->head + 1) % ob->cap;
        ob->len--;
    }
    rec->seq = ++ob->seq;
    ob->ring[(ob->head + ob->len++) % ob->cap] = *rec;
}

/* JSON null stands for "not there" in the outbox, never "". */
static struct json_object *string_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static struct json_object *record_json(const struct stub_record *rec, bool brief)
{
    struct json_object *o = json_object_new_object();
    struct json_object *body;

    json_object_object_add(o, "seq", json_object_new_int64((int64_t)rec->seq));
    if (brief) {
        /* For benchmarks polling while they run: serialising the bodies
         * would stall this loop, and every delivery through it, for ms. */
        json_object_object_add(o, "received_ms", json_object_new_int64((int64_t)rec->received_ms));
        json_object_object_add(o, "kind", json_object_new_string(rec->kind));
        json_object_object_add(o, "status", json_object_new_int(rec->status));
        json_object_object_add(o, "card", json_object_new_string(rec->card.kind));
        json_object_object_add(
            o, "request_id", string_or_null(rec->card.request_id[0] ? rec->card.request_id : NULL));
        return o;
    }
    if (json_strict_value(rec->body, strlen(rec->body), STUB_JSON_MAX_DEPTH, false, &body) != 0)
        body = NULL;
    json_object_object_add(o, "received_ms", json_object_new_int64((int64_t)rec->received_ms));
    json_object_object_add(o, "method", json_object_new_string(rec->method));
    json_object_object_add(o, "path", json_object_new_string(rec->path));
    json_object_object_add(o, "kind", json_object_new_string(rec->kind));
    json_object_object_add(o, "conversation_id", string_or_null(rec->conv));
    json_object_object_add(o, "activity_id", string_or_null(rec->activity_id));
    json_object_object_add(o, "authorization", string_or_null(rec->auth));
    json_object_object_add(o, "status", json_object_new_int(rec->status));
    json_object_object_add(o, "response_id", string_or_null(rec->response_id));
    json_object_object_add(o, "card", json_object_new_string(rec->card.kind));
    json_object_object_add(o, "request_id",
                           string_or_null(rec->card.request_id[0] ? rec->card.request_id : NULL));
    /* The JSON as sent, so tests read fields; the text itself when it is not JSON. */
    json_object_object_add(o, "body", body ? body : json_object_new_string(rec->body));
    return o;
}

struct json_object *stub_outbox_json(const struct stub_outbox *ob, uint64_t since, bool brief)
{
    struct json_object *list = json_object_new_array();
    size_t i;

    /* Oldest first, so a test reads messages in the order they arrived. */
    for (i = 0; i < ob->len; i++) {
        const struct stub_record *rec = &ob->ring[(ob->head + i) % ob->cap];
        if (rec->seq > since)
            json_object_array_add(list, record_json(rec, brief));
    }
    return list;
}

size_t stub_outbox_clear(struct stub_outbox *ob)
{
    size_t i, n = ob->len;

    for (i = 0; i < ob->len; i++)
        stub_record_free(&ob->ring[(ob->head + i) % ob->cap]);
    ob->head = 0;
    ob->len = 0;
    return n;
}

void stub_outbox_free(struct stub_outbox *ob)
{
    stub_outbox_clear(ob);
    xfree(ob->ring);
    ob->ring = NULL;
}
