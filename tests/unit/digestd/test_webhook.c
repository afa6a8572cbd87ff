/*
 * test_webhook.c: the webhook's step order (SPEC §3), from the bytes a
 * client sends to the calls the webhook makes. webhook.c is included for its
 * statics; webhook_sync.c, the Teams parsers (activity, command, card,
 * service_url), request_status, digest, lib/core and the real HTTP server
 * are linked as they are. Everything else the webhook calls is faked here at
 * link level, so the real objects are not in the binary at all: the token
 * checks (auth.h), the queue and the audit records (queue.h, requests.h),
 * the connector (connector.h) and the upstream (upstream.h).
 *
 * Requests go in as bytes through the real connection code: each one is a
 * socketpair whose server end the http_server adopts (http_server_adopt),
 * so 431/404/405/413 are the server's own answers, and the webhook sees the
 * same struct http_request it sees in digestd. Every fake writes its name
 * into one event log and holds its callback until the test fires it, so a
 * test decides what each dependency answers and when. Before logging, a
 * fake reads whatever the server has written to the client's end, so an
 * answer already on the wire is logged ("answer:202") before the call that
 * follows it: the log is the order in which the client and the dependencies
 * saw things. A failure's log holds only the checks that ran and the
 * answer, which proves nothing was stored or sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../../src/digestd/webhook.c"

#include "digest/upstream.h"
#include "http/http_server_internal.h"

#define MAX_HEADER 4096
#define MAX_BODY 8192
#define SPIN_LIMIT 100000
#define AUTH_VALUE "Bearer abc.def.ghi"
#define ACT_ID "1485983408511"
#define SERVICE_URL "https://smba.trafficmanager.net/amer/"
#define CONV_ID                                                                                    \
    "a:17I0kl9EkpE1O9PH5TWrzrLNwnWWcfrU7QZjKR0WSfOpzbfcAg2IaydGElSo10tVr4C7Fc6GtieTJX663WuJCc1u"   \
    "A83n4CSrHSgGBj5XNYLcVlJAs2ZX8DbYBPck201w-"
#define FROM_ID                                                                                    \
    "29:1XJKJMvc5GBtc2JwZq0oj8tHZmzrQgFmB39ATiQWA85gQtHieVkKilBZ9XHoq9j7Zaqt7CZ-NJWi7me2kHTL3Bw"
#define BOT_ID "28:c9e8c047-2a74-40a2-b28a-b162d5f5327c"
#define DIGEST_JSON                                                                                \
    "{\"audience\":\"advisors\",\"generated_at\":\"2024-05-01T08:00:00Z\",\"items\":[{\"name\":"   \
    "\"Ada\",\"title\":\"CTO\",\"company\":\"Acme\",\"location\":\"Paris\",\"summary\":\"x\"}]}"

/* The fake dependencies: opaque to the webhook, so the test may define them. */
struct auth {
    int unused;
};
struct redis_conn {
    int unused;
};
struct queue {
    bool ready;
    struct redis_conn conn;
    unsigned offline[HISTORY_OFFLINE_COUNT_]; /* queue_count_offline calls, by kind */
};
struct connector {
    int unused;
};

/* One response read back from the client's end of the socket. */
struct resp {
    int status;
    char content_type[64];
    char retry_after[16];
    char www_authenticate[32];
    char allow[64];
    struct json_object *body; /* parsed; NULL when it is not JSON */
};

#define MAX_RESP 4

static struct {
    uv_loop_t loop;
    struct config cfg;
    struct metrics *metrics;
    struct http_server *srv;
    struct webhook *wh;
    struct auth auth;
    struct queue queue;
    struct connector connector;
    char http_client; /* stands for the http_client, which only the upstream uses */
    bool srv_stopped;
    bool shedding; /* shed(true) is in force */

    int fd;        /* the client's end; -1 once the server has closed the connection */
    struct buf in; /* bytes read from it, not yet parsed */
    struct resp resp[MAX_RESP];
    int n_resp;
    char events[1024];
    unsigned progress; /* bumped by every byte read and every event */

    /* auth.h */
    bool header_ok;
    char header_value[128]; /* what auth_header_ok was given ("(null)" for NULL) */
    int auth_status;        /* auth_check's verdict, or AUTH_PENDING to hold it */
    char auth_args[512];    /* authorization | serviceUrl | channelId */
    auth_done_cb auth_cb;
    void *auth_data;

    /* queue.h */
    int enqueue_err; /* returned at submission (no callback) when not 0 */
    struct {
        char request_id[64], conv_key[256], activity_id[64], audience[64], test_email[64];
        char mode[8], ref_stale[4], ref_service_url[128];
        size_t n_ref;
    } job;
    queue_enqueue_cb enqueue_cb;
    void *enqueue_data;
    int reference_err;
    char reference_conv_key[256], reference_stale[4];
    queue_done_cb reference_cb;
    void *reference_data;

    /* requests.h */
    char get_args[256]; /* request id | conv key */
    requests_get_cb get_cb;
    void *get_data;
    char ack_args[160]; /* request id | ack activity id */
    queue_ack_cb ack_cb;
    void *ack_data;
    char update_status[16];
    requests_done_cb update_cb;
    void *update_data;

    /* connector.h */
    int send_err;
    enum connector_op card_op;
    char card_to[512]; /* service url | conversation | reply_to_id | activity_id | user | bot */
    char *card_text;   /* the card's JSON (owned) */
    char *msg_body;    /* connector_send's activity (owned) */
    connector_done_cb send_cb;
    void *send_data;

    /* upstream.h */
    int fetch_err;
    char fetch_audience[64];
    upstream_cb fetch_cb;
    void *fetch_data;
} T;

static char *fixture; /* teams-personal-chat.json */

/* ---- the client end: what the server wrote ------------------------------ */

static void event(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void event(const char *fmt, ...)
{
    size_t n = strlen(T.events);
    va_list ap;

    if (n)
        n += (size_t)snprintf(T.events + n, sizeof(T.events) - n, " ");
    va_start(ap, fmt);
    vsnprintf(T.events + n, sizeof(T.events) - n, fmt, ap);
    va_end(ap);
    T.progress++;
}

/* The value of header name in head (CRLF lines), into out ("" when absent). */
static void head_value(const char *head, const char *name, char *out, size_t size)
{
    const char *p = head;
    size_t n = strlen(name);

    out[0] = '\0';
    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            p += n + 1;
            p += strspn(p, " ");
            snprintf(out, size, "%.*s", (int)strcspn(p, "\r"), p);
            return;
        }
    }
}

/* Takes every complete response off the front of T.in. */
static void parse_responses(void)
{
    char *end, *text, len[24];
    size_t head, body_len;
    struct resp *r;

    while ((end = T.in.len ? strstr(T.in.data, "\r\n\r\n") : NULL) != NULL) {
        head = (size_t)(end - T.in.data) + 4;
        *end = '\0'; /* the head as a string, for head_value */
        head_value(T.in.data, "Content-Length", len, sizeof(len));
        body_len = strtoul(len, NULL, 10);
        if (T.in.len < head + body_len) {
            *end = '\r';
            return;
        }
        assert_true(T.n_resp < MAX_RESP);
        r = &T.resp[T.n_resp++];
        assert_int_equal(strncmp(T.in.data, "HTTP/1.1 ", 9), 0);
        r->status = (int)strtol(T.in.data + 9, NULL, 10);
        head_value(T.in.data, "Content-Type", r->content_type, sizeof(r->content_type));
        head_value(T.in.data, "Retry-After", r->retry_after, sizeof(r->retry_after));
        head_value(T.in.data, "WWW-Authenticate", r->www_authenticate, sizeof(r->www_authenticate));
        head_value(T.in.data, "Allow", r->allow, sizeof(r->allow));
        text = xstrndup(T.in.data + head, body_len);
        r->body = json_tokener_parse(text);
        xfree(text);
        buf_consume(&T.in, head + body_len);
        event("answer:%d", r->status);
    }
}

/* Reads what the server wrote so far; closes our end once the server closed its own. */
static void pump(void)
{
    char chunk[4096];
    ssize_t n;

    if (T.fd < 0)
        return;
    while ((n = recv(T.fd, chunk, sizeof(chunk), MSG_DONTWAIT)) > 0) {
        assert_int_equal(buf_append(&T.in, chunk, (size_t)n), 0);
        T.progress++;
    }
    parse_responses();
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close(T.fd);
        T.fd = -1;
    }
}

/* Runs the loop until a few turns in a row change nothing (no timers are involved). */
static void settle(void)
{
    int quiet = 0, spins = 0;

    while (quiet < 8) {
        unsigned before = T.progress;

        uv_run(&T.loop, UV_RUN_NOWAIT);
        pump();
        quiet = T.progress == before ? quiet + 1 : 0;
        assert_true(++spins < SPIN_LIMIT);
    }
}

/* Sends raw request bytes on a new connection and lets the server take them. */
static void send_raw(const char *bytes, size_t len)
{
    int fds[2];

    assert_true(T.fd < 0); /* one connection at a time */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    assert_int_equal(http_server_adopt(T.srv, fds[0]), 0);
    T.fd = fds[1];
    assert_int_equal(send(T.fd, bytes, len, MSG_NOSIGNAL), (ssize_t)len);
    settle();
}

/* A request; ctype and auth NULL leave those headers out. */
static void request(const char *method, const char *path, const char *ctype, const char *auth,
                    const char *body)
{
    struct buf b;

    buf_init(&b, 1 << 20);
    assert_int_equal(
        buf_printf(&b, "%s %s HTTP/1.1\r\nHost: digestd\r\nConnection: close\r\n", method, path),
        0);
    if (ctype)
        assert_int_equal(buf_printf(&b, "Content-Type: %s\r\n", ctype), 0);
    if (auth)
        assert_int_equal(buf_printf(&b, "Authorization: %s\r\n", auth), 0);
    assert_int_equal(buf_printf(&b, "Content-Length: %zu\r\n\r\n%s", strlen(body), body), 0);
    send_raw(b.data, b.len);
    buf_free(&b);
}

/* POST /api/messages as the channel sends it. */
static void post(const char *body)
{
    request("POST", "/api/messages", "application/json; charset=utf-8", AUTH_VALUE, body);
}

static const struct resp *last_resp(void)
{
    assert_true(T.n_resp > 0);
    return &T.resp[T.n_resp - 1];
}

static const char *body_string(const struct json_object *o, const char *key)
{
    struct json_object *v;

    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* The answer is status with SPEC §3's body {"error":{"code","message"}} and nothing else. */
static void assert_error(int status, const char *code)
{
    const struct resp *r = last_resp();
    struct json_object *err;

    assert_int_equal(r->status, status);
    assert_string_equal(r->content_type, "application/json");
    assert_non_null(r->body);
    assert_int_equal(json_object_object_length(r->body), 1);
    assert_true(json_object_object_get_ex(r->body, "error", &err));
    assert_int_equal(json_object_object_length(err), 2);
    assert_string_equal(body_string(err, "code"), code);
    assert_non_null(body_string(err, "message"));
    assert_true(body_string(err, "message")[0] != '\0');
    /* 503 says when to retry, 401 names its scheme (RFC 7235). */
    assert_string_equal(r->retry_after, status == 503 ? "1" : "");
    assert_string_equal(r->www_authenticate, status == 401 ? "Bearer" : "");
}

static const char *error_message(void)
{
    struct json_object *err;

    assert_true(json_object_object_get_ex(last_resp()->body, "error", &err));
    return body_string(err, "message");
}

static void assert_events(const char *expected)
{
    assert_string_equal(T.events, expected);
}

/* ---- activities --------------------------------------------------------- */

/*
 * The fixture with edits: pairs of a path ("text", "from.id") and a JSON
 * value, or NULL to remove the member; the list ends with a NULL path.
 * Owned (xfree).
 */
static char *activity_edit(const char *path, ...)
{
    struct json_object *root = json_tokener_parse(fixture), *parent, *value;
    char key[64], *out;
    const char *dot;
    va_list ap;

    assert_non_null(root);
    va_start(ap, path);
    for (; path; path = va_arg(ap, const char *)) {
        const char *json = va_arg(ap, const char *);

        parent = root;
        dot = strchr(path, '.');
        snprintf(key, sizeof(key), "%s", dot ? dot + 1 : path);
        if (dot) {
            char outer[64];

            snprintf(outer, sizeof(outer), "%.*s", (int)(dot - path), path);
            assert_true(json_object_object_get_ex(root, outer, &parent));
        }
        json_object_object_del(parent, key);
        if (json) {
            value = json_tokener_parse(json);
            assert_true(value != NULL || strcmp(json, "null") == 0);
            json_object_object_add(parent, key, value);
        }
    }
    va_end(ap);
    out = xstrdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
    json_object_put(root);
    return out;
}

/* A message whose text is text (a JSON string literal, quotes included). */
static char *message(const char *text_json)
{
    return activity_edit("text", text_json, NULL);
}

static void post_owned(char *body)
{
    post(body);
    xfree(body);
}

/* ---- the fakes: auth.h -------------------------------------------------- */

bool auth_header_ok(const char *value)
{
    pump();
    event("header");
    snprintf(T.header_value, sizeof(T.header_value), "%s", value ? value : "(null)");
    return T.header_ok;
}

int auth_check(struct auth *a, const char *authorization, const char *service_url,
               const char *channel_id, const char **why, auth_done_cb cb, void *data)
{
    assert_ptr_equal(a, &T.auth);
    assert_null(T.auth_cb);
    pump();
    event("token");
    snprintf(T.auth_args, sizeof(T.auth_args), "%s|%s|%s", authorization ? authorization : "",
             service_url ? service_url : "(null)", channel_id ? channel_id : "(null)");
    if (T.auth_status == AUTH_PENDING) {
        T.auth_cb = cb;
        T.auth_data = data;
        return AUTH_PENDING;
    }
    *why = "the fake's verdict";
    return T.auth_status;
}

static void fire_auth(int status)
{
    auth_done_cb cb = T.auth_cb;

    assert_non_null(cb);
    T.auth_cb = NULL;
    cb(status, "the fake's late verdict", T.auth_data);
    settle();
}

/* ---- queue.h ------------------------------------------------------------ */

bool queue_ready(const struct queue *q)
{
    assert_ptr_equal(q, &T.queue);
    return q->ready;
}

void queue_count_offline(struct queue *q, enum history_offline kind)
{
    assert_ptr_equal(q, &T.queue);
    assert_true(kind < HISTORY_OFFLINE_COUNT_);
    q->offline[kind]++;
}

struct redis_conn *queue_conn(struct queue *q)
{
    assert_ptr_equal(q, &T.queue);
    return &q->conn;
}

/* The value of field in a reference's pairs, into out. */
static void ref_value(const char *const *fields, const char *const *values, size_t n,
                      const char *field, char *out, size_t size)
{
    size_t i;

    out[0] = '\0';
    for (i = 0; i < n; i++)
        if (strcmp(fields[i], field) == 0)
            snprintf(out, size, "%s", values[i] ? values[i] : "");
}

int queue_enqueue(struct queue *q, const struct queue_job *job, queue_enqueue_cb cb, void *data)
{
    assert_ptr_equal(q, &T.queue);
    assert_null(T.enqueue_cb);
    pump();
    event("enqueue:%s", job->mode);
    snprintf(T.job.request_id, sizeof(T.job.request_id), "%s", job->request_id);
    snprintf(T.job.conv_key, sizeof(T.job.conv_key), "%s", job->conv_key);
    snprintf(T.job.activity_id, sizeof(T.job.activity_id), "%s", job->activity_id);
    snprintf(T.job.audience, sizeof(T.job.audience), "%s", job->audience);
    snprintf(T.job.test_email, sizeof(T.job.test_email), "%s", job->test_email);
    snprintf(T.job.mode, sizeof(T.job.mode), "%s", job->mode);
    ref_value(job->ref_fields, job->ref_values, job->n_ref, "stale", T.job.ref_stale,
              sizeof(T.job.ref_stale));
    ref_value(job->ref_fields, job->ref_values, job->n_ref, "service_url", T.job.ref_service_url,
              sizeof(T.job.ref_service_url));
    T.job.n_ref = job->n_ref;
    if (T.enqueue_err)
        return T.enqueue_err;
    T.enqueue_cb = cb;
    T.enqueue_data = data;
    return 0;
}

/* The script's answer: first_id is the earlier request's id for a duplicate. */
static void fire_enqueue(int err, bool duplicate, const char *first_id)
{
    queue_enqueue_cb cb = T.enqueue_cb;
    char id[64];

    assert_non_null(cb);
    T.enqueue_cb = NULL;
    snprintf(id, sizeof(id), "%s", duplicate ? first_id : T.job.request_id);
    cb(err, id, duplicate, T.enqueue_data);
    settle();
}

int queue_store_reference(struct queue *q, const char *conv_key, const char *const *fields,
                          const char *const *values, size_t n, queue_done_cb cb, void *data)
{
    assert_ptr_equal(q, &T.queue);
    assert_null(T.reference_cb);
    assert_int_equal(n, ACTIVITY_REF_FIELDS);
    pump();
    event("reference");
    snprintf(T.reference_conv_key, sizeof(T.reference_conv_key), "%s", conv_key);
    ref_value(fields, values, n, "stale", T.reference_stale, sizeof(T.reference_stale));
    if (T.reference_err)
        return T.reference_err;
    T.reference_cb = cb;
    T.reference_data = data;
    return 0;
}

static void fire_reference(int err)
{
    queue_done_cb cb = T.reference_cb;

    assert_non_null(cb);
    T.reference_cb = NULL;
    cb(err, T.reference_data);
    settle();
}

/* ---- requests.h --------------------------------------------------------- */

int requests_get(struct redis_conn *conn, const struct config *cfg, const char *request_id,
                 const char *conv_key, requests_get_cb cb, void *data)
{
    assert_ptr_equal(conn, &T.queue.conn);
    assert_null(T.get_cb);
    pump();
    event("status_read");
    snprintf(T.get_args, sizeof(T.get_args), "%s|%s", request_id, conv_key);
    T.get_cb = cb;
    T.get_data = data;
    return 0;
}

static void fire_get(const char *request_id, const char *status)
{
    static const char *const fields[] = {"status", "mode", "audience", "created_ms"};
    const char *values[] = {status, "async", "advisors", "1700000000000"};
    requests_get_cb cb = T.get_cb;

    assert_non_null(cb);
    T.get_cb = NULL;
    cb(0, request_id, fields, values, ARRAY_SIZE(fields), T.get_data);
    settle();
}

int queue_record_ack(struct queue *q, const char *request_id, const char *ack_activity_id,
                     queue_ack_cb cb, void *data)
{
    assert_ptr_equal(q, &T.queue);
    assert_null(T.ack_cb);
    pump();
    event("ack_id");
    snprintf(T.ack_args, sizeof(T.ack_args), "%s|%s", request_id, ack_activity_id);
    T.ack_cb = cb;
    T.ack_data = data;
    return 0;
}

static void fire_ack(int err, bool found, enum request_status status)
{
    queue_ack_cb cb = T.ack_cb;

    assert_non_null(cb);
    T.ack_cb = NULL;
    cb(err, found, status, T.ack_data);
    settle();
}

int requests_update(struct redis_conn *conn, const struct config *cfg, const char *request_id,
                    const char *const *fields, const char *const *values, size_t n,
                    requests_done_cb cb, void *data)
{
    assert_ptr_equal(conn, &T.queue.conn);
    assert_null(T.update_cb);
    assert_string_equal(request_id, T.job.request_id);
    pump();
    event("record_update");
    ref_value(fields, values, n, "status", T.update_status, sizeof(T.update_status));
    T.update_cb = cb;
    T.update_data = data;
    return 0;
}

static void fire_update(int err)
{
    requests_done_cb cb = T.update_cb;

    assert_non_null(cb);
    T.update_cb = NULL;
    cb(err, T.update_data);
    settle();
}

/* A shutdown gives a recorded request back; refused at submission here, so it ends at once. */
int requests_release(struct redis_conn *conn, const struct config *cfg, const char *request_id,
                     const char *conv_key, const char *activity_id, const char *why,
                     requests_done_cb cb, void *data)
{
    assert_ptr_equal(conn, &T.queue.conn);
    assert_string_equal(request_id, T.job.request_id);
    assert_string_equal(activity_id, ACT_ID);
    pump();
    event("release");
    return DG_ERR_UNAVAILABLE;
}

/* ---- connector.h -------------------------------------------------------- */

int connector_send_card(struct connector *c, enum connector_op op, const char *service_url,
                        const struct card_address *to, struct json_object *card,
                        const char *request_id, const struct connector_opts *opts,
                        connector_done_cb cb, void *data)
{
    assert_ptr_equal(c, &T.connector);
    assert_null(T.send_cb);
    pump();
    event("card:%s", op == CONNECTOR_UPDATE ? "update" : "reply");
    T.card_op = op;
    snprintf(T.card_to, sizeof(T.card_to), "%s|%s|%s|%s|%s|%s", service_url, to->conversation_id,
             to->reply_to_id ? to->reply_to_id : "", to->activity_id ? to->activity_id : "",
             to->user_id, to->bot_id);
    xfree(T.card_text);
    T.card_text = xstrdup(json_object_to_json_string_ext(card, JSON_C_TO_STRING_PLAIN));
    json_object_put(card); /* taken, even on error */
    if (T.send_err)
        return T.send_err;
    T.send_cb = cb;
    T.send_data = data;
    return 0;
}

/* The acknowledgment as the webhook sends it: held as its card, like connector_send_card's. */
int connector_send_ack(struct connector *c, enum connector_op op, const char *service_url,
                       const struct card_address *to, const struct card_ack_info *ack,
                       const char *request_id, const struct connector_opts *opts,
                       connector_done_cb cb, void *data)
{
    return connector_send_card(c, op, service_url, to, card_ack(ack), request_id, opts, cb, data);
}

int connector_send(struct connector *c, const struct connector_msg *msg,
                   const struct connector_opts *opts, connector_done_cb cb, void *data)
{
    assert_ptr_equal(c, &T.connector);
    assert_null(T.send_cb);
    pump();
    event("result:reply");
    assert_int_equal(msg->op, CONNECTOR_REPLY);
    assert_string_equal(msg->service_url, SERVICE_URL);
    assert_string_equal(msg->conversation_id, CONV_ID);
    assert_string_equal(msg->activity_id, ACT_ID);
    xfree(T.msg_body);
    T.msg_body = xstrndup(msg->body, msg->body_len);
    if (T.send_err)
        return T.send_err;
    T.send_cb = cb;
    T.send_data = data;
    return 0;
}

/* The connector's verdict on the card (or result) it holds. */
static void fire_send(int err, const char *activity_id)
{
    struct connector_result res = {
        .err = err,
        .status = err ? 500 : 201,
        .outcome = err ? HTTP_OUTCOME_FINAL : HTTP_OUTCOME_OK,
        .retry_after_s = -1,
        .attempts = 1,
        .activity_id = activity_id,
    };
    connector_done_cb cb = T.send_cb;

    assert_non_null(cb);
    T.send_cb = NULL;
    cb(&res, T.send_data);
    settle();
}

/* ---- upstream.h --------------------------------------------------------- */

int upstream_fetch(struct http_client *hc, const struct config *cfg, const char *audience,
                   upstream_cb cb, void *data, struct http_client_call **call)
{
    assert_ptr_equal(hc, (struct http_client *)(void *)&T.http_client);
    assert_null(T.fetch_cb);
    pump();
    event("upstream");
    snprintf(T.fetch_audience, sizeof(T.fetch_audience), "%s", audience);
    if (T.fetch_err)
        return T.fetch_err;
    T.fetch_cb = cb;
    T.fetch_data = data;
    return 0;
}

static void fire_fetch_ok(void)
{
    struct digest d;
    struct upstream_result res = {0, 200, HTTP_OUTCOME_OK, &d, -1, "ok"};
    upstream_cb cb = T.fetch_cb;

    assert_non_null(cb);
    assert_int_equal(digest_parse(&d, DIGEST_JSON, strlen(DIGEST_JSON)), 0);
    T.fetch_cb = NULL;
    cb(&res, T.fetch_data);
    digest_free(&d); /* borrowed by the callback only */
    settle();
}

static void fire_fetch_failed(int err, long status)
{
    struct upstream_result res = {err, status, HTTP_OUTCOME_FINAL, NULL, -1, "upstream said no"};
    upstream_cb cb = T.fetch_cb;

    assert_non_null(cb);
    T.fetch_cb = NULL;
    cb(&res, T.fetch_data);
    settle();
}

/* ---- setup and teardown ------------------------------------------------- */

/*
 * As if WEBHOOK_MAX_PENDING more requests were waiting on Redis: added to
 * the real count rather than built, since each fake holds one call.
 */
static void shed(bool on)
{
    if (on && !T.shedding)
        T.wh->redis_waiting += WEBHOOK_MAX_PENDING;
    else if (!on && T.shedding)
        T.wh->redis_waiting -= WEBHOOK_MAX_PENDING;
    T.shedding = on;
}

static void on_srv_stopped(struct http_server *srv, void *data)
{
    T.srv_stopped = true;
}

static int setup(void **state)
{
    static const struct http_server_limits limits = {
        .max_header_bytes = MAX_HEADER,
        .max_body_bytes = MAX_BODY,
        .header_timeout_ms = 60000,
        .idle_timeout_ms = 60000,
        .max_connections = 16,
    };

    memset(&T, 0, sizeof(T));
    T.fd = -1;
    buf_init(&T.in, 1 << 20);
    assert_int_equal(uv_loop_init(&T.loop), 0);
    config_defaults(&T.cfg); /* BOT_AUTH=jwt, async, advisors,c_suite,global */
    T.metrics = metrics_create();
    T.srv = http_server_create(&T.loop, &limits, T.metrics);
    T.wh = webhook_create(&T.cfg, &T.queue, &T.connector,
                          (struct http_client *)(void *)&T.http_client, T.metrics);
    webhook_set_auth(T.wh, &T.auth);
    webhook_register(T.wh, T.srv);
    T.queue.ready = true;
    T.header_ok = true;
    T.auth_status = 200;
    return 0;
}

static bool nothing_held(void)
{
    return !T.auth_cb && !T.enqueue_cb && !T.reference_cb && !T.get_cb && !T.ack_cb &&
           !T.update_cb && !T.send_cb && !T.fetch_cb;
}

/*
 * After a failed test: answers whatever a fake still holds with an error,
 * as a shutdown would, until every request has ended, so that the server
 * can stop and the next test starts from a clean loop.
 */
static void end_held_calls(void)
{
    int round;

    for (round = 0; round < 16 && !nothing_held(); round++) {
        if (T.auth_cb)
            fire_auth(503);
        if (T.enqueue_cb)
            fire_enqueue(DG_ERR_CLOSED, false, NULL);
        if (T.reference_cb)
            fire_reference(DG_ERR_CLOSED);
        if (T.get_cb)
            fire_get("", "failed");
        if (T.ack_cb)
            fire_ack(DG_ERR_CLOSED, false, REQUEST_STATUS_QUEUED);
        if (T.update_cb)
            fire_update(DG_ERR_CLOSED);
        if (T.send_cb)
            fire_send(DG_ERR_CLOSED, "");
        if (T.fetch_cb)
            fire_fetch_failed(DG_ERR_CLOSED, 0);
    }
}

/*
 * Every test ends with nothing held, nothing in flight, every byte read part
 * of a whole response, and the loop empty. Checked after the cleanup, so a
 * failed test does not take the next ones down with it.
 */
static int teardown(void **state)
{
    bool held = !nothing_held(), leftover = T.in.len != 0;
    unsigned in_flight, redis_waiting;
    int i;

    shed(false); /* a test that failed while shedding */
    end_held_calls();
    in_flight = T.wh->in_flight;
    redis_waiting = T.wh->redis_waiting;
    if (T.fd >= 0)
        close(T.fd);
    /* A request still in flight would keep the server from stopping: leak it all then. */
    assert_int_equal(in_flight, 0);
    http_server_stop(T.srv, on_srv_stopped, NULL);
    while (!T.srv_stopped)
        uv_run(&T.loop, UV_RUN_ONCE);
    http_server_free(T.srv);
    webhook_free(T.wh);
    metrics_free(T.metrics);
    config_free(&T.cfg);
    for (i = 0; i < T.n_resp; i++)
        json_object_put(T.resp[i].body);
    buf_free(&T.in);
    xfree(T.card_text);
    xfree(T.msg_body);
    assert_false(held);
    assert_false(leftover);
    assert_int_equal(redis_waiting, 0);
    assert_int_equal(uv_run(&T.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&T.loop), 0);
    return 0;
}

/* Between the requests of one test: the last connection is closed, the log starts again. */
static void next(void)
{
    int i;

    settle();
    assert_true(T.fd < 0);
    for (i = 0; i < T.n_resp; i++)
        json_object_put(T.resp[i].body);
    memset(T.resp, 0, sizeof(T.resp));
    T.n_resp = 0;
    T.events[0] = '\0';
}

/* ---- the server's answers come first: 431, 404, 405, 413 ---------------- */

/* A body of n bytes of x. Owned. */
static char *filler(size_t n)
{
    char *s = xmalloc(n + 1);

    memset(s, 'x', n);
    s[n] = '\0';
    return s;
}

/* POST /api/messages with body as one chunk, and no content type. */
static void send_raw_chunked(const char *body)
{
    struct buf b;

    buf_init(&b, 1 << 20);
    assert_int_equal(buf_printf(&b,
                                "POST /api/messages HTTP/1.1\r\nHost: d\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
                                strlen(body), body),
                     0);
    send_raw(b.data, b.len);
    buf_free(&b);
}

static void test_431_first(void **state)
{
    char *pad = filler(MAX_HEADER + 1);
    char *bytes = xmalloc(MAX_HEADER + 256);

    /* Unknown path, wrong method, no content type: the headers' size answers. */
    snprintf(bytes, MAX_HEADER + 256, "GET /nope HTTP/1.1\r\nHost: d\r\nX-Pad: %s\r\n\r\n", pad);
    send_raw(bytes, strlen(bytes));
    assert_error(431, "headers_too_large");
    assert_events("answer:431");
    xfree(pad);
    xfree(bytes);
}

static void test_404_405_413_before_the_webhook(void **state)
{
    char *big = filler(MAX_BODY + 1);

    request("POST", "/api/nope", "text/plain", NULL, big);
    assert_error(404, "not_found");
    assert_events("answer:404");
    next();
    request("GET", "/api/messages", "text/plain", NULL, big);
    assert_error(405, "method_not_allowed");
    assert_string_equal(last_resp()->allow, "POST");
    assert_events("answer:405");
    next();
    request("POST", "/api/messages", "text/plain", NULL, big);
    assert_error(413, "payload_too_large");
    assert_events("answer:413");
    next();
    /* Chunked, so the size shows only as the body arrives: still the server's 413. */
    send_raw_chunked(big);
    assert_error(413, "payload_too_large");
    assert_events("answer:413");
    xfree(big);
}

/* ---- 415, then the Authorization header, then the JSON ------------------ */

static void test_415_before_authorization(void **state)
{
    static const char *const refused[] = {"text/plain", "application/jsonp", "text/json",
                                          "application/json-patch+json", NULL};
    static const char *const accepted[] = {"application/json", "Application/JSON",
                                           "application/json;charset=utf-8",
                                           "application/json ; charset=UTF-8"};
    size_t i;

    for (i = 0; i < ARRAY_SIZE(refused); i++) {
        request("POST", "/api/messages", refused[i], NULL, "{broken");
        assert_error(415, "unsupported_media_type");
        assert_events("answer:415");
        next();
    }
    /* An accepted type goes on to the header check (refused here, to stop there). */
    T.header_ok = false;
    for (i = 0; i < ARRAY_SIZE(accepted); i++) {
        request("POST", "/api/messages", accepted[i], NULL, "{broken");
        assert_error(401, "unauthorized");
        assert_events("header answer:401");
        next();
    }
}

static void test_authorization_shape_before_json(void **state)
{
    T.header_ok = false;
    request("POST", "/api/messages", "application/json", "Basic dXNlcjpwdw==", "{broken");
    assert_error(401, "unauthorized");
    assert_events("header answer:401");
    assert_string_equal(T.header_value, "Basic dXNlcjpwdw==");
    next();
    request("POST", "/api/messages", "application/json", NULL, "{broken");
    assert_error(401, "unauthorized");
    assert_string_equal(T.header_value, "(null)");
    assert_events("header answer:401");
}

static void test_json_before_token(void **state)
{
    static const char *const broken[] = {"{broken", "[1]", "\"text\"", "{} x", "", "{\"a\":1}}"};
    size_t i;

    for (i = 0; i < ARRAY_SIZE(broken); i++) {
        request("POST", "/api/messages", "application/json", AUTH_VALUE, broken[i]);
        assert_error(400, "bad_json");
        assert_events("header answer:400"); /* the token was not looked at */
        next();
    }
}

/* ---- the token, then the fields, then serviceUrl ------------------------ */

static void test_token_before_fields(void **state)
{
    static const struct {
        int status;
        const char *code;
    } verdicts[] = {{401, "unauthorized"}, {403, "forbidden"}, {503, "unavailable"}};
    char want[64];
    size_t i;

    for (i = 0; i < ARRAY_SIZE(verdicts); i++) {
        /* No type and a foreign serviceUrl: the token's verdict answers first. */
        T.auth_status = verdicts[i].status;
        post_owned(
            activity_edit("type", NULL, "serviceUrl", "\"https://evil.example.com/\"", NULL));
        assert_error(verdicts[i].status, verdicts[i].code);
        snprintf(want, sizeof(want), "header token answer:%d", verdicts[i].status);
        assert_events(want);
        assert_string_equal(T.auth_args, AUTH_VALUE "|https://evil.example.com/|msteams");
        next();
    }
    /* The token check is given what it needs from the body, even when it is absent. */
    T.auth_status = 401;
    post_owned(activity_edit("serviceUrl", NULL, "channelId", "7", NULL));
    assert_error(401, "unauthorized");
    assert_string_equal(T.auth_args, AUTH_VALUE "|(null)|(null)");
}

static void test_token_that_waits_for_keys(void **state)
{
    T.auth_status = AUTH_PENDING;
    post_owned(activity_edit("type", NULL, NULL));
    assert_events("header token");
    assert_int_equal(T.n_resp, 0); /* nothing answered while the keys are fetched */
    fire_auth(401);
    assert_error(401, "unauthorized");
    assert_events("header token answer:401");
    next();
    post_owned(message("\"help\""));
    assert_events("header token");
    fire_auth(200);
    assert_events("header token reference");
    fire_reference(0);
    fire_send(0, "card-1");
    assert_events("header token reference answer:200 card:reply");
}

static void test_fields_before_service_url(void **state)
{
    static const char *const fields[] = {"type", "id", "conversation.id", "from.id",
                                         "recipient.id"};
    static const char *const wrong[] = {NULL, "42", "\"\"", "{}"};
    char want[128];
    size_t i, j;

    for (i = 0; i < ARRAY_SIZE(fields); i++) {
        for (j = 0; j < ARRAY_SIZE(wrong); j++) {
            post_owned(activity_edit(fields[i], wrong[j], "serviceUrl",
                                     "\"https://evil.example.com/\"", NULL));
            assert_error(400, "bad_activity");
            snprintf(want, sizeof(want), "missing or invalid field: %s", fields[i]);
            assert_string_equal(error_message(), want);
            assert_events("header token answer:400");
            next();
        }
    }
    post_owned(activity_edit("serviceUrl", "42", NULL));
    assert_error(400, "bad_activity");
    assert_string_equal(error_message(), "missing or invalid field: serviceUrl");
}

static void test_service_url_before_503(void **state)
{
    static const char *const urls[] = {"\"https://evil.example.com/\"",
                                       "\"http://smba.trafficmanager.net/amer/\"",
                                       "\"https://smba.trafficmanager.net.evil.com/\""};
    size_t i;

    /* Redis away and the load shed: a foreign serviceUrl is still a 403. */
    T.queue.ready = false;
    shed(true);
    for (i = 0; i < ARRAY_SIZE(urls); i++) {
        post_owned(activity_edit("serviceUrl", urls[i], NULL));
        assert_error(403, "service_url_not_allowed");
        assert_events("header token answer:403");
        next();
    }
    shed(false);
}

/* ---- 503: shedding load, and Redis away for anything but a digest ------- */

static void test_shedding_load(void **state)
{
    shed(true);
    post_owned(message("\"digest advisors\""));
    assert_error(503, "unavailable");
    assert_events("header token answer:503");
    next();
    post_owned(message("\"help\""));
    assert_error(503, "unavailable");
    assert_events("header token answer:503");
    shed(false);
}

static void test_redis_away_refuses_all_but_digest(void **state)
{
    static const char *const texts[] = {"\"help\"", "\"status\"", "\"digest nobody\"", "\"hello\""};
    size_t i;

    T.queue.ready = false;
    for (i = 0; i < ARRAY_SIZE(texts); i++) {
        post_owned(message(texts[i]));
        assert_error(503, "unavailable");
        assert_events("header token answer:503");
        next();
    }
    post_owned(activity_edit("type", "\"conversationUpdate\"", NULL));
    assert_error(503, "unavailable");
    assert_events("header token answer:503");
}

/* ---- BOT_AUTH=off, and jwt without the auth module ---------------------- */

static void test_auth_off_skips_both_checks(void **state)
{
    T.cfg.bot_auth = BOT_AUTH_OFF;
    request("POST", "/api/messages", "application/json", NULL, "{broken");
    assert_error(400, "bad_json");
    assert_events("answer:400");
    next();
    request("POST", "/api/messages", "application/json", NULL, fixture);
    assert_events("enqueue:async");
    fire_enqueue(0, false, NULL);
    fire_send(0, "ack-1");
    fire_ack(0, true, REQUEST_STATUS_QUEUED);
    assert_events("enqueue:async answer:202 card:reply ack_id");
}

static void test_jwt_without_auth_fails_closed(void **state)
{
    webhook_set_auth(T.wh, NULL);
    post(fixture);
    assert_error(503, "unavailable");
    assert_events("header answer:503");
}

/* ---- digest, async: one enqueue, then 202, then the ack card, then its id */

static void assert_request_id_answer(int status, const char *mode)
{
    const struct resp *r = last_resp();

    assert_int_equal(r->status, status);
    assert_non_null(r->body);
    assert_int_equal(json_object_object_length(r->body), mode ? 2 : 1);
    assert_string_equal(body_string(r->body, "requestId"), T.job.request_id);
    if (mode)
        assert_string_equal(body_string(r->body, "mode"), mode);
}

static void test_digest_async_order(void **state)
{
    char want[160];

    post(fixture); /* "digest advisors" */
    assert_events("header token enqueue:async");
    assert_int_equal(T.n_resp, 0); /* no 202 before Redis has the job */
    assert_string_equal(T.header_value, AUTH_VALUE);
    assert_int_equal(strlen(T.job.request_id), UUID_STR_LEN);
    assert_string_equal(T.job.conv_key, "msteams:" CONV_ID);
    assert_string_equal(T.job.activity_id, ACT_ID);
    assert_string_equal(T.job.audience, "advisors");
    assert_string_equal(T.job.test_email, "");
    assert_string_equal(T.job.mode, "async");
    assert_int_equal(T.job.n_ref, ACTIVITY_REF_FIELDS);
    assert_string_equal(T.job.ref_stale, "0");
    assert_string_equal(T.job.ref_service_url, SERVICE_URL);

    fire_enqueue(0, false, NULL);
    assert_events("header token enqueue:async answer:202 card:reply");
    assert_string_equal(last_resp()->content_type, "application/json");
    assert_request_id_answer(202, NULL);
    assert_int_equal(T.card_op, CONNECTOR_REPLY);
    assert_string_equal(T.card_to, SERVICE_URL "|" CONV_ID "|" ACT_ID "||" FROM_ID "|" BOT_ID);
    assert_non_null(strstr(T.card_text, "Digest requested"));
    assert_non_null(strstr(T.card_text, T.job.request_id));

    fire_send(0, "ack-1");
    assert_events("header token enqueue:async answer:202 card:reply ack_id");
    snprintf(want, sizeof(want), "%s|ack-1", T.job.request_id);
    assert_string_equal(T.ack_args, want);
    fire_ack(0, true, REQUEST_STATUS_QUEUED);
    assert_events("header token enqueue:async answer:202 card:reply ack_id");
}

static void test_digest_async_alias_and_test_email(void **state)
{
    char *body = message("\"<at>Teams TestBot</at> Digest C_SUITE ada@example.com\"");

    request("POST", "/api/teams/webhook", "application/json", AUTH_VALUE, body);
    xfree(body);
    assert_events("header token enqueue:async");
    assert_string_equal(T.job.audience, "c_suite");
    assert_string_equal(T.job.test_email, "ada@example.com");
    fire_enqueue(0, false, NULL);
    assert_request_id_answer(202, NULL);
    assert_non_null(strstr(T.card_text, "ada@example.com"));
    fire_send(0, "ack-1");
    fire_ack(0, true, REQUEST_STATUS_PROCESSING);
    assert_events("header token enqueue:async answer:202 card:reply ack_id");
}

/* The job ended before the ack's id was recorded: the card is updated at once. */
static void test_digest_ack_updated_when_job_already_ended(void **state)
{
    post(fixture);
    fire_enqueue(0, false, NULL);
    fire_send(0, "ack-1");
    fire_ack(0, true, REQUEST_STATUS_DELIVERED);
    assert_events("header token enqueue:async answer:202 card:reply ack_id card:update");
    assert_int_equal(T.card_op, CONNECTOR_UPDATE);
    assert_string_equal(T.card_to, SERVICE_URL "|" CONV_ID "|" ACT_ID "|ack-1|" FROM_ID "|" BOT_ID);
    assert_non_null(strstr(T.card_text, "Digest delivered"));
    fire_send(0, "ack-1");
    assert_events("header token enqueue:async answer:202 card:reply ack_id card:update");
}

/* An ack card that could not be posted has no id to record. */
static void test_digest_ack_not_delivered(void **state)
{
    post(fixture);
    fire_enqueue(0, false, NULL);
    fire_send(DG_ERR_PROTOCOL, "");
    assert_events("header token enqueue:async answer:202 card:reply");
}

/*
 * With WEBHOOK_MAX_ACKS_PENDING acknowledgments under way (added to the real
 * count, as shed() does), a new job is still queued and answered 202, but its
 * acknowledgment is skipped and counted; below the bound the next one goes,
 * and the count falls back when that request ends.
 */
static void test_ack_skipped_past_the_bound(void **state)
{
    T.wh->acks_pending += WEBHOOK_MAX_ACKS_PENDING;
    post(fixture);
    fire_enqueue(0, false, NULL);
    assert_events("header token enqueue:async answer:202");
    assert_request_id_answer(202, NULL);
    assert_int_equal(metrics_counter_get(T.metrics, METRICS_C_ACKS_SKIPPED), 1);
    assert_int_equal(T.wh->acks_pending, WEBHOOK_MAX_ACKS_PENDING);
    T.wh->acks_pending -= 1;
    next();
    post(fixture);
    fire_enqueue(0, false, NULL);
    assert_events("header token enqueue:async answer:202 card:reply");
    assert_int_equal(T.wh->acks_pending, WEBHOOK_MAX_ACKS_PENDING);
    fire_send(DG_ERR_PROTOCOL, "");
    assert_int_equal(T.wh->acks_pending, WEBHOOK_MAX_ACKS_PENDING - 1);
    assert_int_equal(metrics_counter_get(T.metrics, METRICS_C_ACKS_SKIPPED), 1);
    T.wh->acks_pending -= WEBHOOK_MAX_ACKS_PENDING - 1;
}

static void test_duplicate_gets_no_card(void **state)
{
    const struct resp *r;
    struct json_object *dup;

    post(fixture);
    fire_enqueue(0, true, "11111111-2222-4333-8444-555555555555");
    assert_events("header token enqueue:async answer:200");
    r = last_resp();
    assert_int_equal(json_object_object_length(r->body), 2);
    assert_string_equal(body_string(r->body, "requestId"), "11111111-2222-4333-8444-555555555555");
    assert_true(json_object_object_get_ex(r->body, "duplicate", &dup));
    assert_true(json_object_is_type(dup, json_type_boolean) && json_object_get_boolean(dup));
}

static void test_enqueue_failures(void **state)
{
    static const struct {
        int err, status;
        const char *code;
    } refused[] = {{DG_ERR_TOO_LARGE, 413, "payload_too_large"},
                   {DG_ERR_INVALID, 400, "bad_activity"},
                   {DG_ERR_UNAVAILABLE, 503, "unavailable"},
                   {DG_ERR_CLOSED, 503, "unavailable"}};
    char want[64];
    size_t i;

    /* Refused at submission: no callback will come. */
    for (i = 0; i < ARRAY_SIZE(refused); i++) {
        T.enqueue_err = refused[i].err;
        post(fixture);
        assert_error(refused[i].status, refused[i].code);
        snprintf(want, sizeof(want), "header token enqueue:async answer:%d", refused[i].status);
        assert_events(want);
        next();
    }
    /* Lost after submission: maybe stored, so 503 (the retry reads "duplicate"), no card. */
    T.enqueue_err = 0;
    post(fixture);
    fire_enqueue(DG_ERR_TIMEOUT, false, NULL);
    assert_error(503, "unavailable");
    assert_events("header token enqueue:async answer:503");
}

/* ---- activities that queue nothing -------------------------------------- */

static void assert_empty_200(void)
{
    const struct resp *r = last_resp();

    assert_int_equal(r->status, 200);
    assert_string_equal(r->content_type, "application/json");
    assert_non_null(r->body);
    assert_true(json_object_is_type(r->body, json_type_object));
    assert_int_equal(json_object_object_length(r->body), 0);
}

static void test_other_types_refresh_the_reference(void **state)
{
    static const char *const types[] = {"\"conversationUpdate\"", "\"messageReaction\"",
                                        "\"invoke\"", "\"installationUpdate\""};
    size_t i;

    for (i = 0; i < ARRAY_SIZE(types); i++) {
        post_owned(activity_edit("type", types[i], NULL));
        assert_events("header token reference");
        assert_int_equal(T.n_resp, 0); /* no 200 before the reference is stored */
        assert_string_equal(T.reference_conv_key, "msteams:" CONV_ID);
        assert_string_equal(T.reference_stale, "0");
        fire_reference(0);
        assert_empty_200();
        assert_events("header token reference answer:200");
        next();
    }
}

static void test_installation_removed_marks_stale(void **state)
{
    post_owned(activity_edit("type", "\"installationUpdate\"", "action", "\"remove\"", NULL));
    assert_events("header token reference");
    assert_string_equal(T.reference_stale, "1");
    fire_reference(0);
    assert_empty_200();
    assert_events("header token reference answer:200");
    next();
    post_owned(activity_edit("type", "\"installationUpdate\"", "action", "\"add\"", NULL));
    assert_string_equal(T.reference_stale, "0");
    fire_reference(0);
    assert_empty_200();
}

static void test_reference_failures(void **state)
{
    post_owned(message("\"help\""));
    fire_reference(DG_ERR_TIMEOUT);
    assert_error(503, "unavailable");
    assert_events("header token reference answer:503"); /* and no card */
    next();
    T.reference_err = DG_ERR_UNAVAILABLE;
    post_owned(activity_edit("type", "\"conversationUpdate\"", NULL));
    assert_error(503, "unavailable");
    assert_events("header token reference answer:503");
}

static void test_help_and_unknown_text_get_the_help_card(void **state)
{
    static const char *const texts[] = {"\"help\"", "\"hello there\"", "\"\"",
                                        "\"<at>Teams TestBot</at> HELP\""};
    size_t i;

    for (i = 0; i < ARRAY_SIZE(texts); i++) {
        post_owned(message(texts[i]));
        assert_events("header token reference");
        fire_reference(0);
        assert_empty_200();
        assert_events("header token reference answer:200 card:reply");
        assert_non_null(strstr(T.card_text, "Candidate digest: commands"));
        assert_string_equal(T.card_to, SERVICE_URL "|" CONV_ID "|" ACT_ID "||" FROM_ID "|" BOT_ID);
        fire_send(0, "card-1");
        next();
    }
}

static void test_status_card(void **state)
{
    post_owned(message("\"status\""));
    fire_reference(0);
    assert_empty_200();
    assert_events("header token reference answer:200 status_read");
    assert_string_equal(T.get_args, "|msteams:" CONV_ID); /* this conversation's latest */
    fire_get("11111111-2222-4333-8444-555555555555", "delivered");
    assert_events("header token reference answer:200 status_read card:reply");
    assert_non_null(strstr(T.card_text, "Digest request status"));
    assert_non_null(strstr(T.card_text, "11111111-2222-4333-8444-555555555555"));
    fire_send(0, "card-1");
    next();
    post_owned(message("\"status 11111111-2222-4333-8444-555555555555\""));
    fire_reference(0);
    assert_string_equal(T.get_args, "11111111-2222-4333-8444-555555555555|msteams:" CONV_ID);
    fire_get("11111111-2222-4333-8444-555555555555", "queued");
    fire_send(0, "card-2");
    assert_events("header token reference answer:200 status_read card:reply");
    next();
    /* A malformed id is not looked up: an error card says what to type. */
    post_owned(message("\"status not/an/id\""));
    fire_reference(0);
    assert_events("header token reference answer:200 card:reply");
    assert_non_null(strstr(T.card_text, "That request id does not look right."));
    fire_send(0, "card-3");
}

static void test_bad_digest_arguments_get_an_error_card(void **state)
{
    post_owned(message("\"digest nobody\""));
    assert_events("header token reference"); /* queued nothing */
    fire_reference(0);
    assert_empty_200();
    assert_events("header token reference answer:200 card:reply");
    assert_non_null(strstr(T.card_text, "'nobody' is not an audience I know."));
    assert_non_null(strstr(T.card_text, "Valid audiences: advisors, c_suite, global."));
    fire_send(0, "card-1");
    next();
    post_owned(message("\"digest advisors not-an-email\""));
    fire_reference(0);
    assert_events("header token reference answer:200 card:reply");
    assert_non_null(strstr(T.card_text, "That test email address does not look right."));
    fire_send(0, "card-2");
}

/* A card the connector refuses at once still ends the request. */
static void test_card_refused_at_submission(void **state)
{
    T.send_err = DG_ERR_INVALID;
    post_owned(message("\"help\""));
    fire_reference(0);
    assert_events("header token reference answer:200 card:reply");
    next();
    post(fixture);
    fire_enqueue(0, false, NULL);
    assert_events("header token enqueue:async answer:202 card:reply");
}

/* ---- digest while Redis is away, and USE_ASYNC_DIGEST=false ------------- */

static void test_redis_away_digest_goes_sync(void **state)
{
    T.queue.ready = false;
    post(fixture);
    assert_events("header token upstream"); /* nothing recorded: no Redis */
    assert_string_equal(T.fetch_audience, "advisors");
    fire_fetch_ok();
    assert_events("header token upstream result:reply");
    assert_int_equal(T.n_resp, 0); /* the answer waits for the result card */
    assert_non_null(strstr(T.msg_body, "Candidate digest"));
    assert_non_null(strstr(T.msg_body, "Ada"));
    fire_send(0, "result-1");
    assert_events("header token upstream result:reply answer:200");
    /* The id is the one on the result card (no record holds it). */
    assert_int_equal(strlen(body_string(last_resp()->body, "requestId")), UUID_STR_LEN);
    assert_non_null(strstr(T.msg_body, body_string(last_resp()->body, "requestId")));
    assert_string_equal(body_string(last_resp()->body, "mode"), "sync");
    assert_int_equal(json_object_object_length(last_resp()->body), 2);
    /* Counted as a fallback, for its minute once Redis is back. */
    assert_int_equal(T.queue.offline[HISTORY_OFFLINE_FALLBACK], 1);
    assert_int_equal(T.queue.offline[HISTORY_OFFLINE_SYNC], 0);
}

static void test_redis_away_digest_upstream_fails(void **state)
{
    T.queue.ready = false;
    post(fixture);
    fire_fetch_failed(DG_ERR_PROTOCOL, 500);
    assert_events("header token upstream card:reply");
    assert_non_null(strstr(T.card_text, "The digest service could not build your digest."));
    assert_int_equal(T.n_resp, 0);
    fire_send(0, "error-1");
    assert_error(502, "upstream_failed");
    assert_events("header token upstream card:reply answer:502");
    next();
    post(fixture);
    fire_fetch_failed(DG_ERR_TIMEOUT, 0);
    assert_non_null(strstr(T.card_text, "The digest service did not answer in time."));
    fire_send(0, "error-2");
    assert_error(504, "upstream_timeout");
    assert_events("header token upstream card:reply answer:504");
}

static void test_sync_mode_is_recorded(void **state)
{
    T.cfg.use_async_digest = false;
    post(fixture);
    assert_events("header token enqueue:sync"); /* dedup + record, no job */
    fire_enqueue(0, false, NULL);
    assert_events("header token enqueue:sync upstream");
    fire_fetch_ok();
    fire_send(0, "result-1");
    assert_events("header token enqueue:sync upstream result:reply answer:200 record_update");
    assert_request_id_answer(200, "sync");
    assert_string_equal(T.update_status, "delivered");
    fire_update(0);
    next();
    /* A repeat is answered from the dedup key: no second fetch, no second card. */
    post(fixture);
    fire_enqueue(0, true, "11111111-2222-4333-8444-555555555555");
    assert_events("header token enqueue:sync answer:200");
    assert_string_equal(body_string(last_resp()->body, "requestId"),
                        "11111111-2222-4333-8444-555555555555");
    next();
    /* Redis went away under the script: served unrecorded, as when it is down. */
    post(fixture);
    fire_enqueue(DG_ERR_UNAVAILABLE, false, NULL);
    assert_events("header token enqueue:sync upstream");
    fire_fetch_ok();
    fire_send(0, "result-2");
    assert_events("header token enqueue:sync upstream result:reply answer:200");
    next();
    /*
     * The script's reply was lost (timed out): it may have run, and a 503
     * would make the channel's retry a "duplicate" of a request that no one
     * serves (sync mode queues no job). Served unrecorded instead.
     */
    post(fixture);
    fire_enqueue(DG_ERR_TIMEOUT, false, NULL);
    assert_events("header token enqueue:sync upstream");
    fire_fetch_ok();
    fire_send(0, "result-3");
    assert_events("header token enqueue:sync upstream result:reply answer:200");
    assert_request_id_answer(200, "sync");
}

/* The fetch (or the result card) refused at submission: 503 while stopping, else 502. */
static void test_sync_refused_at_submission(void **state)
{
    T.queue.ready = false;
    T.fetch_err = DG_ERR_CLOSED;
    post(fixture);
    assert_error(503, "unavailable");
    assert_events("header token upstream answer:503"); /* no card: the channel retries */
    next();
    T.fetch_err = DG_ERR_INVALID;
    post(fixture);
    assert_events("header token upstream card:reply");
    fire_send(0, "error-1");
    assert_error(502, "upstream_failed");
    next();
    T.fetch_err = 0;
    T.send_err = DG_ERR_TOO_LARGE;
    post(fixture);
    fire_fetch_ok();
    assert_error(502, "upstream_failed");
    assert_events("header token upstream result:reply answer:502");
    next();
    /* Recorded, then stopping: the record is released so the retry is not a duplicate. */
    T.queue.ready = true;
    T.cfg.use_async_digest = false;
    T.send_err = 0;
    T.fetch_err = DG_ERR_CLOSED;
    post(fixture);
    fire_enqueue(0, false, NULL);
    assert_error(503, "unavailable");
    assert_events("header token enqueue:sync upstream answer:503 release");
}

static void test_sync_mode_upstream_fails_recorded(void **state)
{
    T.cfg.use_async_digest = false;
    post(fixture);
    fire_enqueue(0, false, NULL);
    fire_fetch_failed(DG_ERR_PROTOCOL, 503);
    fire_send(0, "error-1");
    assert_error(502, "upstream_failed");
    assert_events("header token enqueue:sync upstream card:reply answer:502 record_update");
    assert_string_equal(T.update_status, "failed");
    fire_update(0);
}

/*
 * The rollout decides per user (rollout.h, SPEC §2): the fixture's user
 * (its aadObjectId) is in bucket 1, so 1 % serves it sync and 2 % async; an
 * allowed conversation is async at 0 %; false beats the allow list. While
 * Redis is away a user the rollout keeps on sync is counted as sync, not as
 * a fallback.
 */
static void test_rollout_chooses_the_path(void **state)
{
    T.cfg.async_percent = 1;
    post(fixture);
    assert_events("header token enqueue:sync");
    fire_enqueue(0, false, NULL);
    fire_fetch_ok();
    fire_send(0, "result-1");
    assert_request_id_answer(200, "sync");
    fire_update(0);
    next();
    T.cfg.async_percent = 2;
    post(fixture);
    fire_enqueue(0, false, NULL);
    assert_events("header token enqueue:async answer:202 card:reply");
    fire_send(0, "ack-1");
    fire_ack(0, true, REQUEST_STATUS_QUEUED);
    next();
    /* The conversation key is allowed: async at 0 %. */
    T.cfg.async_percent = 0;
    T.cfg.async_allow.items = xmalloc(sizeof(char *));
    T.cfg.async_allow.items[0] = xstrdup(
        "msteams:a:17I0kl9EkpE1O9PH5TWrzrLNwnWWcfrU7QZjKR0WSfOpzbfcAg2IaydGElSo10tVr4C7Fc6Gtie"
        "TJX663WuJCc1uA83n4CSrHSgGBj5XNYLcVlJAs2ZX8DbYBPck201w-");
    T.cfg.async_allow.len = 1;
    post(fixture);
    fire_enqueue(0, false, NULL);
    assert_events("header token enqueue:async answer:202 card:reply");
    fire_send(0, "ack-2");
    fire_ack(0, true, REQUEST_STATUS_QUEUED);
    next();
    /* false wins over the list. */
    T.cfg.use_async_digest = false;
    post(fixture);
    assert_events("header token enqueue:sync");
    fire_enqueue(0, false, NULL);
    fire_fetch_ok();
    fire_send(0, "result-2");
    assert_request_id_answer(200, "sync");
    fire_update(0);
    next();
    /* Redis away: the allowed user is a fallback, a user outside the share plain sync. */
    T.cfg.use_async_digest = true;
    T.queue.ready = false;
    post(fixture);
    fire_fetch_ok();
    fire_send(0, "result-3");
    assert_int_equal(T.queue.offline[HISTORY_OFFLINE_FALLBACK], 1);
    next();
    T.cfg.async_allow.len = 0; /* config_free frees items */
    xfree(T.cfg.async_allow.items[0]);
    xfree(T.cfg.async_allow.items);
    T.cfg.async_allow.items = NULL;
    post(fixture);
    fire_fetch_ok();
    fire_send(0, "result-4");
    assert_int_equal(T.queue.offline[HISTORY_OFFLINE_FALLBACK], 1);
    assert_int_equal(T.queue.offline[HISTORY_OFFLINE_SYNC], 1);
}

/* ---- main --------------------------------------------------------------- */

static char *read_fixture(const char *name)
{
    char path[512], chunk[4096];
    struct buf b;
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", FIXTURES_DIR, name);
    f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    buf_init(&b, 1 << 20);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (buf_append(&b, chunk, n) != 0)
            exit(1);
    fclose(f);
    return buf_take(&b);
}

#define T_(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_(test_431_first),
        T_(test_404_405_413_before_the_webhook),
        T_(test_415_before_authorization),
        T_(test_authorization_shape_before_json),
        T_(test_json_before_token),
        T_(test_token_before_fields),
        T_(test_token_that_waits_for_keys),
        T_(test_fields_before_service_url),
        T_(test_service_url_before_503),
        T_(test_shedding_load),
        T_(test_redis_away_refuses_all_but_digest),
        T_(test_auth_off_skips_both_checks),
        T_(test_jwt_without_auth_fails_closed),
        T_(test_digest_async_order),
        T_(test_digest_async_alias_and_test_email),
        T_(test_digest_ack_updated_when_job_already_ended),
        T_(test_digest_ack_not_delivered),
        T_(test_ack_skipped_past_the_bound),
        T_(test_duplicate_gets_no_card),
        T_(test_enqueue_failures),
        T_(test_other_types_refresh_the_reference),
        T_(test_installation_removed_marks_stale),
        T_(test_reference_failures),
        T_(test_help_and_unknown_text_get_the_help_card),
        T_(test_status_card),
        T_(test_bad_digest_arguments_get_an_error_card),
        T_(test_card_refused_at_submission),
        T_(test_redis_away_digest_goes_sync),
        T_(test_redis_away_digest_upstream_fails),
        T_(test_sync_mode_is_recorded),
        T_(test_sync_mode_upstream_fails_recorded),
        T_(test_sync_refused_at_submission),
        T_(test_rollout_chooses_the_path),
    };
    int rc;

    log_setup(getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, false);
    fixture = read_fixture("teams-personal-chat.json");
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    xfree(fixture);
    return rc;
}
