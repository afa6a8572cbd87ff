/*
 * payload.c: templates of the three activity shapes. Each template is the
 * activity_build_json output for markers instead of ids, cut at the markers
 * into literal pieces; a request is the pieces with the ids in between.
 * The markers hold only braces and capitals, which JSON never escapes and
 * no fixture id contains.
 */
#include "payload.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "core/log.h"
#include "teams/activity_build.h"
#include "teams/jwt_sign.h"

#define MARK_ID "{{ID}}"
#define MARK_CONV "{{CONV}}"
#define MARK_USER "{{USER}}"
#define MAX_PIECES 16
#define TOKEN_MAX (8 * 1024)

enum mark { MARK_NONE, MARK_ACTIVITY, MARK_CONVERSATION, MARK_USERNUM };

struct piece {
    char *text; /* owned */
    size_t len;
    enum mark then; /* the value that follows this piece */
};

struct shape {
    struct piece pieces[MAX_PIECES];
    size_t n;
};

struct payload {
    struct shape shapes[PAYLOAD_SHAPES];
    enum conv_kind order[PAYLOAD_SHAPES]; /* the shapes in use, in turn */
    size_t n_order;
    unsigned conversations;
    char *head; /* request line and headers up to "Content-Length: " */
    size_t head_len;
    char *token;
};

/* Cuts text at the markers into s. */
static int cut(const char *text, struct shape *s)
{
    static const struct {
        const char *mark;
        enum mark what;
    } marks[] = {
        {MARK_ID, MARK_ACTIVITY}, {MARK_CONV, MARK_CONVERSATION}, {MARK_USER, MARK_USERNUM}};

    s->n = 0;
    while (s->n < MAX_PIECES) {
        const char *best = NULL;
        size_t best_mark = 0;
        for (size_t i = 0; i < ARRAY_SIZE(marks); i++) {
            const char *at = strstr(text, marks[i].mark);
            if (at && (!best || at < best)) {
                best = at;
                best_mark = i;
            }
        }
        struct piece *p = &s->pieces[s->n++];
        p->len = best ? (size_t)(best - text) : strlen(text);
        p->text = xstrndup(text, p->len);
        p->then = best ? marks[best_mark].what : MARK_NONE;
        if (!best)
            return 0;
        text = best + strlen(marks[best_mark].mark);
    }
    return DG_ERR_TOO_LARGE;
}

/*
 * A conversation id of the kind's form with the conversation number in it:
 * before "@thread" for chats and channels (a thread per conversation),
 * appended for personal chats ("a:…").
 */
static void conversation_template(const char *base, char *out, size_t size)
{
    const char *at = strstr(base, "@thread");

    if (at)
        snprintf(out, size, "%.*s-" MARK_CONV "%s", (int)(at - base), base, at);
    else
        snprintf(out, size, "%s" MARK_CONV, base);
}

/* Markers where the per-request ids go; the timestamp is a fixture's (digestd does not check it,
 * SPEC A2042). */
static int build_shape(const struct payload_opts *o, enum conv_kind kind, struct shape *s)
{
    struct activity_identity def;
    char conv[512], user[256], aad[64];
    struct buf json;
    int err;

    activity_default_identity(kind, &def);
    conversation_template(def.conversation_id, conv, sizeof(conv));
    snprintf(user, sizeof(user), "%s-" MARK_USER, def.user_id);
    /* A GUID whose last group (12 hex digits) is the user number. */
    snprintf(aad, sizeof(aad), "%.24s" MARK_USER, def.aad_object_id);
    struct activity_spec spec = {
        .kind = kind,
        .text = o->text,
        .id = MARK_ID,
        .timestamp = "2025-10-08T17:33:01.495Z",
        .service_url = o->service_url,
        .app_id = o->app_id,
        .conversation_id = conv,
        .user_id = user,
        .aad_object_id = aad,
    };
    buf_init(&json, PAYLOAD_REQUEST_MAX);
    err = activity_build_json(&spec, &json);
    if (!err)
        err = cut(buf_cstr(&json), s);
    buf_free(&json);
    return err;
}

/* The channel's token: Bot Framework's claims, RS256 with the development key. */
static int sign_token(const struct payload_opts *o, struct payload *p)
{
    struct json_object *c = json_object_new_object();
    int64_t now = (int64_t)o->now_s;
    struct buf tok;
    const char *claims;
    size_t len;
    int err;

    json_object_object_add(c, "iss", json_object_new_string("https://api.botframework.com"));
    json_object_object_add(c, "aud", json_object_new_string(o->app_id));
    json_object_object_add(c, "serviceurl", json_object_new_string(o->service_url));
    /* As the channel does: a little in the past, for clock skew. */
    json_object_object_add(c, "nbf", json_object_new_int64(now - 5));
    json_object_object_add(c, "iat", json_object_new_int64(now - 5));
    json_object_object_add(c, "exp", json_object_new_int64(now + (int64_t)o->token_ttl_s));
    claims = json_object_to_json_string_length(
        c, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    buf_init(&tok, TOKEN_MAX);
    err = jwt_sign_rs256(o->key, o->kid, claims, len, &tok);
    json_object_put(c);
    if (err) {
        log_error("cannot sign the activities' token: %s", dg_strerror(err));
        buf_free(&tok);
        return DG_ERR_INVALID;
    }
    p->token = buf_take(&tok);
    return 0;
}

/* Everything before the body length is the same for every request. */
static void build_head(const struct payload_opts *o, struct payload *p)
{
    struct buf b;

    buf_init(&b, TOKEN_MAX * 2);
    if (buf_printf(&b,
                   "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                   "Authorization: Bearer %s\r\nContent-Length: ",
                   o->path, o->host_header, p->token) != 0)
        abort(); /* paths and hosts are capped by the options far below this */
    p->head_len = b.len;
    p->head = buf_take(&b);
}

int payload_create(const struct payload_opts *o, struct payload **out)
{
    struct payload *p = xcalloc(1, sizeof(*p));
    int err = 0;

    p->conversations = o->conversations ? o->conversations : 1;
    for (int k = 0; k < PAYLOAD_SHAPES && !err; k++) {
        if (!(o->shapes & (1u << k)))
            continue;
        p->order[p->n_order++] = (enum conv_kind)k;
        err = build_shape(o, (enum conv_kind)k, &p->shapes[k]);
    }
    if (!err && p->n_order == 0)
        err = DG_ERR_INVALID;
    if (!err)
        err = sign_token(o, p);
    if (err) {
        payload_free(p);
        return err;
    }
    build_head(o, p);
    *out = p;
    return 0;
}

void payload_free(struct payload *p)
{
    if (!p)
        return;
    for (int k = 0; k < PAYLOAD_SHAPES; k++) {
        for (size_t i = 0; i < p->shapes[k].n; i++)
            xfree(p->shapes[k].pieces[i].text);
    }
    xfree(p->head);
    xfree(p->token);
    xfree(p);
}

const char *payload_token(const struct payload *p)
{
    return p->token;
}

/* The body length is summed first, so the request is written in one pass. */
int payload_request(const struct payload *p, uint64_t n, uint64_t activity_id, struct buf *out)
{
    const struct shape *s = &p->shapes[p->order[n % p->n_order]];
    uint64_t conv = n % p->conversations;
    char vals[4][24];
    size_t lens[4], body = 0, i;
    int err;

    lens[MARK_NONE] = 0;
    vals[MARK_NONE][0] = '\0';
    lens[MARK_ACTIVITY] = (size_t)snprintf(vals[MARK_ACTIVITY], 24, "%" PRIu64, activity_id);
    lens[MARK_CONVERSATION] = (size_t)snprintf(vals[MARK_CONVERSATION], 24, "%" PRIu64, conv);
    /* One user per conversation: 12 hex digits, a GUID's last group. */
    lens[MARK_USERNUM] = (size_t)snprintf(vals[MARK_USERNUM], 24, "%012" PRIx64, conv);
    for (i = 0; i < s->n; i++)
        body += s->pieces[i].len + lens[s->pieces[i].then];
    buf_reset(out);
    err = buf_append(out, p->head, p->head_len);
    if (!err)
        err = buf_printf(out, "%zu\r\n\r\n", body);
    for (i = 0; i < s->n && !err; i++) {
        err = buf_append(out, s->pieces[i].text, s->pieces[i].len);
        if (!err)
            err = buf_append(out, vals[s->pieces[i].then], lens[s->pieces[i].then]);
    }
    return err;
}
