/*
 * http_server.c: HTTP/1.1 on libuv + llhttp (STYLE rules 8, 9, 13, 16).
 *
 * One struct conn per TCP connection embeds its uv_tcp_t, its uv_timer_t and
 * its llhttp_t, plus the one struct http_request it can have outstanding.
 * Bytes read are appended to conn->in and fed to llhttp from there; the
 * callbacks copy what the request needs into capped buffers that are reused
 * across keep-alive requests, so a steady stream of requests allocates
 * nothing. on_message_complete pauses the parser (HPE_PAUSED) and the request
 * goes to its handler; the parser resumes on the bytes still buffered only
 * once the response has been written, so pipelined requests are answered in
 * order and a slow handler makes the connection stop reading (backpressure)
 * instead of buffering without bound.
 *
 * Lifecycle of a conn: READING → HANDLING → WRITING → READING … and, at the
 * end, LINGERING (optional) → CLOSING. It is freed when both handles are
 * closed and no handler still holds its request (a handler may answer after
 * the client has gone; the response is then dropped and the free completes).
 *
 * Expect: 100-continue is answered with an interim "100 Continue" once the
 * request has passed routing and the Content-Length check, so clients that
 * wait for it (curl waits a second) send their body at once.
 */
#include "http/http_server.h"
#include "http/http_server_internal.h"

#include <assert.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <llhttp.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/dec.h"
#include "core/json_write.h"
#include "config.h"
#include "core/list.h"
#include "core/log.h"
#include "metrics.h"

#define LISTEN_BACKLOG 1024
#define READ_CHUNK (64 * 1024)  /* the shared read buffer handed to libuv */
#define BACKLOG_MAX (64 * 1024) /* unparsed bytes buffered while a request is out */
#define IN_MAX (BACKLOG_MAX + READ_CHUNK)
#define RESPONSE_MAX (16 * 1024 * 1024)
#define KEEP_CAP (64 * 1024) /* buffers grown past this are released between requests */
#define LINGER_MS 2000       /* drain time before closing on an unread request */
#define LINGER_MAX_BYTES (1024 * 1024)
#define HEADER_LINE_OVERHEAD 4 /* ": " and CRLF of a header line */
#define ALLOW_MAX 128
#define ERROR_BODY_MAX 1024

enum conn_state {
    CONN_READING,   /* parsing; no request outstanding */
    CONN_HANDLING,  /* a request is with its handler (or an error is being formed) */
    CONN_WRITING,   /* a response is in uv_write */
    CONN_LINGERING, /* last response sent, write side shut: discarding input until EOF */
    CONN_CLOSING,   /* uv_close issued on both handles */
};

/* Where the parser is within the current request, while READING. */
enum conn_phase {
    PHASE_IDLE,    /* between requests: the idle timeout runs */
    PHASE_HEADERS, /* first byte seen, headers incomplete: the header timeout runs */
    PHASE_BODY,    /* headers done, body arriving: the idle timeout runs */
};

struct route {
    const char *method;
    char *path; /* owned; without the trailing '*' of a prefix route */
    size_t path_len;
    bool prefix;
    const char *name;
    http_handler_cb cb;
    void *data;
};

/* Offsets of one header's name and value inside req->hdr. */
struct hdr_pos {
    size_t name;
    size_t value;
};

struct http_request {
    struct conn *conn;         /* the owner; a pointer because accessors take const */
    const struct route *route; /* NULL: answered by the server itself */
    const char *method;        /* llhttp's static name */
    struct buf url;            /* path, then a NUL where the '?' was, then the query */
    const char *query;
    struct buf hdr; /* "name\0value\0" for every header */
    struct hdr_pos *pos;
    size_t n_pos, cap_pos;
    size_t cur_name, cur_value; /* offsets of the header being parsed; SIZE_MAX when none */
    struct buf body;
    uint64_t start_ns;
    bool keep_alive;
    bool head; /* HEAD: the response carries no body bytes */
};

/* What precedes a piece of header value, for the folding check (before()). */
enum { TAIL_OTHER = 0, TAIL_LF, TAIL_LF_WS };

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write_req;
    uv_write_t continue_req;
    uv_shutdown_t shutdown_req;
    llhttp_t parser;
    struct http_server *srv;
    struct list_node node; /* srv->conns */
    enum conn_state state;
    enum conn_phase phase;
    struct buf in; /* bytes read; in_off of them already parsed */
    size_t in_off;
    const char *exec_start; /* what the current llhttp_execute began with */
    int tail;               /* how the bytes dropped from in ended (see before()) */
    struct buf out;         /* the response being written */
    struct buf scratch;     /* an error body being formed */
    struct http_request req;
    size_t header_bytes; /* request line + headers of the current request */
    size_t linger_bytes;
    int early_status; /* an error decided inside a parser callback */
    const char *early_code;
    const char *early_msg;
    char allow[ALLOW_MAX]; /* Allow header of a 405 */
    int pending_closes;
    bool counted; /* holds one of max_connections */
    bool reading;
    bool in_process;      /* inside conn_process: do not re-enter it */
    bool resume_pending;  /* the timer fires at 0 ms to parse buffered requests */
    bool req_outstanding; /* a handler holds req */
    bool close_after;     /* close once the current response is written */
    bool linger;          /* unread input may remain: drain before closing */
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct http_server_limits limits;
    struct metrics *metrics;
    struct route *routes;
    size_t n_routes;
    struct list_node conns; /* struct conn, newest first */
    unsigned n_counted;
    bool stopping;
    bool listener_closed;
    bool stop_done;
    http_server_closed_cb closed_cb;
    void *closed_data;
    uint64_t date_s;
    char date[40];
    char read_buf[READ_CHUNK]; /* libuv reads into it; the bytes are copied out at once */
};

static const llhttp_settings_t parser_settings;
static char continue_bytes[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void conn_process(struct conn *c);
static void conn_dispatch(struct conn *c);
static void conn_close(struct conn *c);
static void conn_after_write(struct conn *c, bool from_loop);
static void conn_respond(struct conn *c, int status, const char *content_type, const void *body,
                         size_t len, const struct http_header *extra, size_t n_extra);
static void conn_respond_error(struct conn *c, int status, const char *code, const char *message,
                               const struct http_header *extra, size_t n_extra);

/* ---------------------------------------------------------------- helpers */

static const struct {
    int status;
    const char *text;
} status_texts[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {413, "Payload Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

const char *http_status_text(int status)
{
    size_t i;

    for (i = 0; i < ARRAY_SIZE(status_texts); i++) {
        if (status_texts[i].status == status)
            return status_texts[i].text;
    }
    return "Unknown";
}

/*
 * The Date header, formatted once per second. Done by hand rather than with
 * strftime so the result does not depend on the locale.
 */
static const char *http_date(struct http_server *srv)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    uint64_t now_s = clock_wall_ms() / 1000;
    time_t t = (time_t)now_s;
    struct tm tm;

    if (now_s == srv->date_s && srv->date[0])
        return srv->date;
    gmtime_r(&t, &tm);
    snprintf(srv->date, sizeof(srv->date), "%s, %02d %s %04d %02d:%02d:%02d GMT",
             days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
    srv->date_s = now_s;
    return srv->date;
}

/* Runs the stop callback once the listener and every conn are gone. */
static void server_maybe_stopped(struct http_server *srv)
{
    if (!srv->stopping || !srv->listener_closed || !list_empty(&srv->conns) || srv->stop_done)
        return;
    srv->stop_done = true;
    if (srv->closed_cb)
        srv->closed_cb(srv, srv->closed_data);
}

/* ------------------------------------------------------------ conn memory */

static void request_init(struct http_request *req, const struct http_server_limits *lim)
{
    size_t url_max =
        lim->max_header_bytes < HTTP_MAX_URL_BYTES ? lim->max_header_bytes : HTTP_MAX_URL_BYTES;

    memset(req, 0, sizeof(*req));
    buf_init(&req->url, url_max);
    /* Every header costs HEADER_LINE_OVERHEAD budget bytes but only two NULs here. */
    buf_init(&req->hdr, lim->max_header_bytes);
    buf_init(&req->body, lim->max_body_bytes);
}

/* Forgets the previous request but keeps the memory, unless it grew large. */
static void request_reset(struct http_request *req)
{
    struct buf *bufs[] = {&req->url, &req->hdr, &req->body};
    size_t i;

    for (i = 0; i < ARRAY_SIZE(bufs); i++) {
        if (bufs[i]->cap > KEEP_CAP)
            buf_free(bufs[i]);
        else
            buf_reset(bufs[i]);
    }
    req->route = NULL;
    req->method = "";
    req->query = "";
    req->n_pos = 0;
    req->cur_name = SIZE_MAX;
    req->cur_value = SIZE_MAX;
    req->start_ns = 0;
    req->keep_alive = false;
    req->head = false;
}

static struct conn *conn_new(struct http_server *srv)
{
    struct conn *c = xcalloc(1, sizeof(*c));

    c->srv = srv;
    c->state = CONN_READING;
    c->phase = PHASE_IDLE;
    buf_init(&c->in, IN_MAX);
    buf_init(&c->out, RESPONSE_MAX);
    buf_init(&c->scratch, ERROR_BODY_MAX);
    request_init(&c->req, &srv->limits);
    request_reset(&c->req);
    c->req.conn = c;
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    list_insert_head(&srv->conns, &c->node);
    return c;
}

static void conn_free(struct conn *c)
{
    struct http_server *srv = c->srv;

    list_remove(&c->node);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->scratch);
    buf_free(&c->req.url);
    buf_free(&c->req.hdr);
    buf_free(&c->req.body);
    xfree(c->req.pos);
    xfree(c);
    server_maybe_stopped(srv);
}

/* Both handles report here; the last one frees, unless a handler holds req. */
static void on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;

    if (--c->pending_closes == 0 && !c->req_outstanding)
        conn_free(c);
}

static void conn_uncount(struct conn *c)
{
    if (!c->counted)
        return;
    c->counted = false;
    c->srv->n_counted--;
    metrics_gauge_set(c->srv->metrics, METRICS_G_CONNECTIONS, c->srv->n_counted);
}

/*
 * Starts closing both handles. The conn stays allocated until both close
 * callbacks ran and no handler holds its request (STYLE rule 9).
 */
static void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    conn_uncount(c);
    /* Handle memory is recovered from ->data here: the close callback is shared. */
    c->tcp.data = c;
    c->timer.data = c;
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* ----------------------------------------------------------------- timers */

static void on_conn_timer(uv_timer_t *t);

static void timer_arm(struct conn *c, uint64_t ms)
{
    if (ms)
        uv_timer_start(&c->timer, on_conn_timer, ms, 0);
    else
        uv_timer_stop(&c->timer);
}

/* Sets the timer for the current state; called on every transition. */
static void conn_arm_timer(struct conn *c)
{
    const struct http_server_limits *lim = &c->srv->limits;

    switch (c->state) {
    case CONN_READING:
        timer_arm(c, c->phase == PHASE_HEADERS ? lim->header_timeout_ms : lim->idle_timeout_ms);
        break;
    case CONN_WRITING:
        /* A client that stops reading its response stalls the write. */
        timer_arm(c, lim->idle_timeout_ms);
        break;
    case CONN_LINGERING:
        timer_arm(c, LINGER_MS);
        break;
    case CONN_HANDLING:
    case CONN_CLOSING:
        uv_timer_stop(&c->timer);
        break;
    }
}

/*
 * The conn's only timer: header timeout, idle timeout, write stall and
 * linger all share it (conn_arm_timer picks the one for the state), and it
 * doubles as the 0 ms deferral of conn_after_write.
 */
static void on_conn_timer(uv_timer_t *t)
{
    struct conn *c = container_of(t, struct conn, timer);

    if (c->state == CONN_CLOSING)
        return;
    if (c->resume_pending) {
        /* Not a timeout: the deferred parse of pipelined bytes (conn_after_write). */
        c->resume_pending = false;
        conn_arm_timer(c);
        conn_process(c);
        return;
    }
    if (c->state == CONN_READING && c->phase == PHASE_HEADERS)
        log_debug("http: header timeout, closing connection");
    else if (c->state != CONN_LINGERING)
        log_debug("http: idle timeout, closing connection");
    conn_close(c);
}

/* ---------------------------------------------------------------- reading */

/*
 * Every conn reads into the server's one buffer: libuv calls on_read right
 * after on_alloc, and on_read copies the bytes into conn->in before
 * returning, so an idle conn holds no read memory.
 */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct conn *c = container_of((uv_tcp_t *)h, struct conn, tcp);

    *b = uv_buf_init(c->srv->read_buf, sizeof(c->srv->read_buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void conn_read_start(struct conn *c)
{
    if (c->reading)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

static void conn_read_stop(struct conn *c)
{
    if (!c->reading)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

/* Unparsed bytes still buffered (pipelined requests waiting their turn). */
static size_t conn_backlog(const struct conn *c)
{
    return c->in.len - c->in_off;
}

/*
 * Keeps the buffer of pipelined bytes small: while a request is out, stop
 * reading once BACKLOG_MAX bytes wait; reading restarts after the response.
 */
static void conn_update_reading(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    if (c->state != CONN_READING && conn_backlog(c) >= BACKLOG_MAX)
        conn_read_stop(c);
    else
        conn_read_start(c);
}

/* Called before bytes [p, p + n) leave in: keeps what before() needs of them. */
static void remember_tail(struct conn *c, const char *p, size_t n)
{
    bool ws = false;

    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
        n--;
        ws = true;
    }
    if (n == 0) { /* white space only: it extends what came before */
        if (ws && c->tail != TAIL_OTHER)
            c->tail = TAIL_LF_WS;
        return;
    }
    c->tail = p[n - 1] != '\n' ? TAIL_OTHER : ws ? TAIL_LF_WS : TAIL_LF;
}

static int conn_buffer_input(struct conn *c, const char *p, size_t n)
{
    /* Drop parsed bytes first so the buffer never holds more than the backlog. */
    if (c->in_off) {
        remember_tail(c, c->in.data, c->in_off);
        buf_consume(&c->in, c->in_off);
        c->in_off = 0;
    }
    return buf_append(&c->in, p, n);
}

static void conn_linger_read(struct conn *c, ssize_t nread)
{
    c->linger_bytes += (size_t)nread;
    if (c->linger_bytes > LINGER_MAX_BYTES)
        conn_close(c);
}

/*
 * EOF from the client. Between requests it is an ordinary close; in the
 * middle of one llhttp_finish decides (a request that runs to EOF could end
 * there); with a request outstanding the client is taken as gone, like
 * nginx does: the handler may still answer, into the void.
 */
static void conn_on_eof(struct conn *c)
{
    if (c->state == CONN_READING && llhttp_finish(&c->parser) == HPE_PAUSED) {
        /* A request that ran to EOF is complete: answer it, then close. */
        c->req.keep_alive = false;
        conn_read_stop(c);
        conn_dispatch(c);
        return;
    }
    conn_close(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = container_of((uv_tcp_t *)s, struct conn, tcp);

    if (c->state == CONN_CLOSING || nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF && c->state != CONN_LINGERING)
            conn_on_eof(c);
        else
            conn_close(c);
        return;
    }
    if (c->state == CONN_LINGERING) {
        conn_linger_read(c, nread);
        return;
    }
    if (conn_buffer_input(c, b->base, (size_t)nread) != 0) {
        /* Cannot happen while conn_update_reading works; be safe anyway. */
        conn_close(c);
        return;
    }
    if (c->state == CONN_READING && c->phase != PHASE_HEADERS)
        conn_arm_timer(c);
    conn_process(c);
    conn_update_reading(c);
}

/* ---------------------------------------------------------------- routing */

static bool route_path_matches(const struct route *r, const char *path, size_t len)
{
    if (r->prefix)
        return len >= r->path_len && memcmp(r->path, path, r->path_len) == 0;
    return len == r->path_len && memcmp(r->path, path, len) == 0;
}

static void allow_add(char *allow, const char *method)
{
    size_t used = strlen(allow);

    if (strstr(allow, method))
        return;
    snprintf(allow + used, ALLOW_MAX - used, "%s%s", used ? ", " : "", method);
}

/*
 * Finds the route of the request; returns 0, 404 or 405 (the Allow list is
 * then in c->allow).
 */
static int conn_route(struct conn *c)
{
    /* A dozen routes at most: a linear scan beats any index here. */
    const struct http_server *srv = c->srv;
    const char *path = buf_cstr(&c->req.url);
    size_t len = strlen(path), i;
    bool path_known = false;

    c->allow[0] = '\0';
    for (i = 0; i < srv->n_routes; i++) {
        const struct route *r = &srv->routes[i];
        if (!route_path_matches(r, path, len))
            continue;
        if (strcmp(r->method, c->req.method) == 0) {
            c->req.route = r;
            return 0;
        }
        path_known = true;
        allow_add(c->allow, r->method);
    }
    return path_known ? 405 : 404;
}

/* ------------------------------------------------------- llhttp callbacks */

static struct conn *parser_conn(llhttp_t *p)
{
    return container_of(p, struct conn, parser);
}

/* Remembers an error decided inside a callback; the caller answers it. */
static int conn_fail_early(struct conn *c, int status, const char *code, const char *msg)
{
    c->early_status = status;
    c->early_code = code;
    c->early_msg = msg;
    return -1;
}

/*
 * llhttp reports spans, not positions, so the request line and headers are
 * measured as the sum of their spans plus a fixed overhead per line. That
 * slightly under-counts odd white space, which the header timeout bounds.
 * The check runs on every span, so a header that never ends is cut off as
 * soon as it crosses the limit rather than at its end.
 */
static int count_header_bytes(struct conn *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > c->srv->limits.max_header_bytes)
        return conn_fail_early(c, 431, "headers_too_large",
                               "request line and headers exceed the limit");
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct conn *c = parser_conn(p);

    request_reset(&c->req);
    c->header_bytes = 0;
    c->early_status = 0;
    c->phase = PHASE_HEADERS;
    /* Measured from the first byte, not re-armed by later bytes: slow clients are cut off. */
    conn_arm_timer(c);
    return 0;
}

static int on_request_line_part(llhttp_t *p, const char *at, size_t n)
{
    return count_header_bytes(parser_conn(p), n);
}

static int on_version_complete(llhttp_t *p)
{
    /* Two spaces and the CRLF of the request line. */
    return count_header_bytes(parser_conn(p), HEADER_LINE_OVERHEAD);
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = parser_conn(p);

    if (count_header_bytes(c, n))
        return -1;
    if (buf_append(&c->req.url, at, n))
        return conn_fail_early(c, 414, "uri_too_long", "request target exceeds the limit");
    return 0;
}

static int on_url_complete(llhttp_t *p)
{
    struct http_request *req = &parser_conn(p)->req;
    char *q;

    if (!req->url.data)
        return 0;
    q = memchr(req->url.data, '?', req->url.len);
    if (q) {
        *q = '\0';
        req->query = q + 1;
    }
    return 0;
}

/* Header bytes after the body (chunked trailers) count but are not kept. */
static bool in_trailers(const struct conn *c)
{
    return c->phase == PHASE_BODY;
}

static int hdr_append(struct conn *c, const char *at, size_t n)
{
    if (count_header_bytes(c, n))
        return -1;
    if (in_trailers(c))
        return 0;
    if (buf_append(&c->req.hdr, at, n))
        return conn_fail_early(c, 431, "headers_too_large", "headers exceed the limit");
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = parser_conn(p);

    if (c->req.cur_name == SIZE_MAX)
        c->req.cur_name = c->req.hdr.len;
    return hdr_append(c, at, n);
}

/* The bytes before at: a line end right before it, one and then SP/HT, or neither. */
static int before(const struct conn *c, const char *at)
{
    const char *p = at;
    bool ws = false;

    while (p > c->in.data && (p[-1] == ' ' || p[-1] == '\t')) {
        p--;
        ws = true;
    }
    if (p > c->in.data)
        return p[-1] != '\n' ? TAIL_OTHER : ws ? TAIL_LF_WS : TAIL_LF;
    /* The start of what is kept: the bytes dropped before it decide. */
    if (!ws)
        return c->tail;
    return c->tail == TAIL_OTHER ? TAIL_OTHER : TAIL_LF_WS;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = parser_conn(p);

    /*
     * Obsolete line folding (a line starting with white space continues the
     * value) is accepted by llhttp even when strict. A continuation comes as
     * a second piece of the value, from inside the data or right after a
     * line end; after an empty first line ("X:\r\n v") the value's only
     * piece starts after a line end and white space. A piece of a value
     * merely split between two reads starts at the start of the data, after
     * a byte of the value. RFC 9112 §5.2 lets a server refuse folding, and a
     * proxy in front may read it differently (Content-Length!).
     */
    if (n > 0 && (c->req.cur_value != SIZE_MAX ? at != c->exec_start || before(c, at) != TAIL_OTHER
                                               : before(c, at) == TAIL_LF_WS))
        return conn_fail_early(c, 400, "bad_request", "folded header lines are not accepted");
    if (c->req.cur_value == SIZE_MAX)
        c->req.cur_value = c->req.hdr.len;
    return hdr_append(c, at, n);
}

static int on_header_field_complete(llhttp_t *p)
{
    struct conn *c = parser_conn(p);

    if (in_trailers(c))
        return 0;
    if (c->req.cur_name == SIZE_MAX)
        c->req.cur_name = c->req.hdr.len;
    /* The NUL needs no budget: the line overhead counted below covers it. */
    if (buf_append(&c->req.hdr, "", 1))
        return conn_fail_early(c, 431, "headers_too_large", "headers exceed the limit");
    return 0;
}

static void hdr_push(struct http_request *req)
{
    if (req->n_pos == req->cap_pos) {
        req->cap_pos = req->cap_pos ? 2 * req->cap_pos : 16;
        req->pos = xrealloc(req->pos, req->cap_pos * sizeof(*req->pos));
    }
    req->pos[req->n_pos].name = req->cur_name;
    req->pos[req->n_pos].value = req->cur_value;
    req->n_pos++;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct conn *c = parser_conn(p);
    struct http_request *req = &c->req;

    if (count_header_bytes(c, HEADER_LINE_OVERHEAD))
        return -1;
    if (!in_trailers(c)) {
        if (req->cur_value == SIZE_MAX)
            req->cur_value = req->hdr.len; /* an empty value fires no data callback */
        /* llhttp keeps trailing white space in the value; the protocol does not. */
        while (req->hdr.len > req->cur_value &&
               (req->hdr.data[req->hdr.len - 1] == ' ' || req->hdr.data[req->hdr.len - 1] == '\t'))
            req->hdr.len--;
        if (buf_append(&req->hdr, "", 1))
            return conn_fail_early(c, 431, "headers_too_large", "headers exceed the limit");
        hdr_push(req);
    }
    req->cur_name = SIZE_MAX;
    req->cur_value = SIZE_MAX;
    return 0;
}

/* Whether body bytes follow the headers (llhttp's flags, read at headers-complete). */
static bool request_has_body(const llhttp_t *p)
{
    return (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
}

/* Answers Expect: 100-continue on its own small write; see the file comment. */
static void conn_send_continue(struct conn *c)
{
    uv_buf_t b = uv_buf_init(continue_bytes, sizeof(continue_bytes) - 1);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);

    if (n == (int)b.len)
        return;
    if (n > 0)
        b = uv_buf_init(continue_bytes + n, b.len - (size_t)n);
    /* On failure the response write fails the same way and closes the conn. */
    (void)uv_write(&c->continue_req, (uv_stream_t *)&c->tcp, &b, 1, NULL);
}

/*
 * Routing and limits run here, before any body byte is read, in SPEC §3
 * order (431 was checked while the headers arrived): 404, 405, 413. An error
 * on a request without a body is answered at message complete and keeps the
 * connection; with a body it stops the parser, and the conn closes after
 * the answer instead of reading the body.
 */
static int on_headers_complete(llhttp_t *p)
{
    struct conn *c = parser_conn(p);
    struct http_request *req = &c->req;
    int status;
    const char *expect;

    c->phase = PHASE_BODY;
    conn_arm_timer(c);
    req->start_ns = clock_mono_ns();
    req->method = llhttp_method_name((llhttp_method_t)p->method);
    req->head = p->method == HTTP_HEAD;
    req->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
    status = conn_route(c);
    if (status == 404)
        conn_fail_early(c, 404, "not_found", "no such path");
    else if (status == 405)
        conn_fail_early(c, 405, "method_not_allowed", "method not allowed for this path");
    else if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->srv->limits.max_body_bytes)
        conn_fail_early(c, 413, "payload_too_large", "request body exceeds the limit");
    if (c->early_status)
        return request_has_body(p) ? -1 : 0;
    expect = http_request_header(req, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && request_has_body(p))
        conn_send_continue(c);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = parser_conn(p);

    if (buf_append(&c->req.body, at, n))
        return conn_fail_early(c, 413, "payload_too_large", "request body exceeds the limit");
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct conn *c = parser_conn(p);

    c->phase = PHASE_IDLE;
    /* Stop here: the next pipelined request waits until this one is answered. */
    return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_method = on_request_line_part,
    .on_url = on_url,
    .on_version = on_request_line_part,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_url_complete = on_url_complete,
    .on_version_complete = on_version_complete,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
};

/* ------------------------------------------------------------- processing */

/* Our own answer, decided before the handler could run (an Allow list with a 405). */
static void conn_respond_early(struct conn *c)
{
    struct http_header allow = {"Allow", c->allow};

    conn_respond_error(c, c->early_status, c->early_code, c->early_msg, &allow,
                       c->early_status == 405 ? 1 : 0);
}

/* A complete request: to its handler, or answered here if routing failed. */
static void conn_dispatch(struct conn *c)
{
    assert(c->state == CONN_READING);
    c->state = CONN_HANDLING;
    conn_arm_timer(c);
    if (c->early_status) {
        conn_respond_early(c);
        return;
    }
    c->req_outstanding = true;
    c->req.route->cb(&c->req, c->req.route->data);
}

/*
 * Maps a stopped parser to the answer: our own early error, or 400 for
 * anything llhttp rejected. The connection closes after it (the one place
 * llhttp error codes become HTTP statuses, STYLE rule 4).
 */
static void conn_parse_failed(struct conn *c, llhttp_errno_t err)
{
    assert(c->state == CONN_READING);
    c->in_off = c->in.len;
    c->linger = true;
    c->close_after = true;
    c->state = CONN_HANDLING;
    if (c->early_status) {
        conn_respond_early(c);
        return;
    }
    log_debug("http: bad request: %s (%s)", llhttp_errno_name(err),
              llhttp_get_error_reason(&c->parser));
    conn_respond_error(c, 400, "bad_request", "malformed HTTP request", NULL, 0);
}

/*
 * Feeds buffered bytes to llhttp until a request completes (then dispatches
 * it) or the bytes run out. A handler that answers synchronously brings the
 * conn back to READING and the loop continues with the next pipelined
 * request; the in_process flag keeps conn_after_write from re-entering.
 */
static void conn_process(struct conn *c)
{
    if (c->in_process)
        return;
    c->in_process = true;
    c->resume_pending = false;
    while (c->state == CONN_READING && conn_backlog(c) > 0) {
        const char *start = c->in.data + c->in_off;
        llhttp_errno_t err;

        c->exec_start = start;
        err = llhttp_execute(&c->parser, start, conn_backlog(c));
        if (err == HPE_OK) {
            c->in_off = c->in.len;
        } else if (err == HPE_PAUSED) {
            c->in_off += (size_t)(llhttp_get_error_pos(&c->parser) - start);
            conn_dispatch(c);
        } else {
            conn_parse_failed(c, err);
        }
    }
    if (c->state == CONN_READING && c->in_off == c->in.len) {
        remember_tail(c, c->in.data, c->in.len);
        buf_reset(&c->in);
        c->in_off = 0;
    }
    c->in_process = false;
}

/* ---------------------------------------------------------------- writing */

static void on_shutdown(uv_shutdown_t *sr, int status)
{
    /* Nothing to do: lingering ends on EOF, on the timer or in conn_close. */
}

/* Closes after a final response; drains unread input first so no RST eats it. */
static void conn_finish(struct conn *c)
{
    if ((!c->linger && conn_backlog(c) == 0) || c->srv->stopping) {
        conn_close(c);
        return;
    }
    c->state = CONN_LINGERING;
    conn_arm_timer(c);
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    conn_read_start(c);
}

static void on_write(uv_write_t *wr, int status)
{
    struct conn *c = container_of(wr, struct conn, write_req);

    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    conn_after_write(c, true);
}

/*
 * The response is out. Closes, or goes back to reading; buffered pipelined
 * bytes are parsed inline when called from the loop, else on the next loop
 * turn (a 0 ms timer) so that a handler's respond() never runs the next
 * request's handler inside itself.
 */
static void conn_after_write(struct conn *c, bool from_loop)
{
    assert(c->state == CONN_HANDLING || c->state == CONN_WRITING);
    if (c->close_after) {
        conn_finish(c);
        return;
    }
    c->state = CONN_READING;
    c->phase = PHASE_IDLE;
    llhttp_resume(&c->parser);
    conn_arm_timer(c);
    if (conn_backlog(c) > 0) {
        if (from_loop && !c->in_process) {
            conn_process(c);
        } else if (!c->in_process) {
            c->resume_pending = true;
            uv_timer_start(&c->timer, on_conn_timer, 0, 0);
        }
    }
    conn_update_reading(c);
}

/*
 * One write per response. uv_try_write usually takes it all at once (small
 * responses, an empty socket buffer), which saves uv_write's queueing and a
 * loop turn; the rest, if any, goes through uv_write from c->out, which stays
 * untouched until on_write.
 */
static void conn_write_out(struct conn *c)
{
    uv_buf_t b = uv_buf_init(c->out.data, c->out.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);

    if (n == (int)c->out.len) {
        conn_after_write(c, false);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    if (n > 0)
        b = uv_buf_init(c->out.data + n, c->out.len - (size_t)n);
    c->state = CONN_WRITING;
    conn_arm_timer(c);
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0)
        conn_close(c);
}

static int append_header(struct buf *b, const char *name, const char *value)
{
    int err = buf_append_str(b, name);

    if (!err)
        err = buf_append(b, ": ", 2);
    if (!err)
        err = buf_append_str(b, value);
    if (!err)
        err = buf_append(b, "\r\n", 2);
    return err;
}

/* Status line and headers into c->out; the body is appended by the caller. */
static int build_head(struct conn *c, int status, const char *content_type, size_t len,
                      const struct http_header *extra, size_t n_extra)
{
    struct buf *b = &c->out;
    char line[DEC_U64_SIZE];
    size_t i;
    int err;

    err = buf_append(b, "HTTP/1.1 ", 9);
    if (!err)
        err = buf_append(b, line, dec_u64(line, (uint64_t)status));
    if (!err)
        err = buf_append(b, " ", 1);
    if (!err)
        err = buf_append_str(b, http_status_text(status));
    if (!err)
        err = buf_append(b, "\r\n", 2);
    if (!err)
        err = append_header(b, "Date", http_date(c->srv));
    dec_u64(line, len);
    if (!err)
        err = append_header(b, "Content-Length", line);
    if (!err && content_type)
        err = append_header(b, "Content-Type", content_type);
    if (!err)
        err = append_header(b, "Connection", c->close_after ? "close" : "keep-alive");
    for (i = 0; !err && i < n_extra; i++)
        err = append_header(b, extra[i].name, extra[i].value);
    if (!err)
        err = buf_append(b, "\r\n", 2);
    return err;
}

/*
 * Writes one response on c (state HANDLING). Decides Connection: keep-alive
 * only when the request allowed it and the server is not stopping.
 */
static void conn_respond(struct conn *c, int status, const char *content_type, const void *body,
                         size_t len, const struct http_header *extra, size_t n_extra)
{
    const char *route = c->req.route ? c->req.route->name : "unmatched";
    uint64_t elapsed = c->req.start_ns ? clock_mono_ns() - c->req.start_ns : 0;

    metrics_http_request(c->srv->metrics, route, status, elapsed);
    if (!c->req.keep_alive || c->srv->stopping)
        c->close_after = true;
    /* A big response (/metrics) must not pin its buffer on a keep-alive conn. */
    if (c->out.cap > KEEP_CAP)
        buf_free(&c->out);
    buf_reset(&c->out);
    if (build_head(c, status, content_type, len, extra, n_extra) ||
        (!c->req.head && buf_append(&c->out, body, len))) {
        log_error("http: response of %zu bytes too large, answering 500", len);
        buf_reset(&c->out);
        c->close_after = true;
        if (build_head(c, 500, NULL, 0, NULL, 0)) {
            conn_close(c);
            return;
        }
    }
    conn_write_out(c);
}

static void conn_respond_error(struct conn *c, int status, const char *code, const char *message,
                               const struct http_header *extra, size_t n_extra)
{
    static const char fallback[] = "{\"error\":{\"code\":\"internal\",\"message\":\"\"}}";
    struct buf *b = &c->scratch;
    int err;

    buf_reset(b);
    err = buf_append_str(b, "{\"error\":{\"code\":\"");
    if (!err)
        err = json_escape_buf(b, code);
    if (!err)
        err = buf_append_str(b, "\",\"message\":\"");
    if (!err)
        err = json_escape_buf(b, message);
    if (!err)
        err = buf_append_str(b, "\"}}");
    if (err)
        conn_respond(c, status, "application/json", fallback, sizeof(fallback) - 1, extra, n_extra);
    else
        conn_respond(c, status, "application/json", b->data, b->len, extra, n_extra);
}

/* ------------------------------------------------------- request accessors */

const char *http_request_method(const struct http_request *req)
{
    return req->method;
}

const char *http_request_path(const struct http_request *req)
{
    return buf_cstr(&req->url);
}

const char *http_request_query(const struct http_request *req)
{
    return req->query;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    size_t i;

    /*
     * Linear in the number of headers, which max_header_bytes bounds; the
     * headers were stored once as they arrived, so nothing is rescanned.
     */
    for (i = 0; i < req->n_pos; i++) {
        if (strcasecmp(req->hdr.data + req->pos[i].name, name) == 0)
            return req->hdr.data + req->pos[i].value;
    }
    return NULL;
}

const char *http_request_body(const struct http_request *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return buf_cstr(&req->body);
}

uint64_t http_request_start_ns(const struct http_request *req)
{
    return req->start_ns;
}

static struct conn *request_conn(const struct http_request *req)
{
    return req->conn;
}

bool http_request_client_alive(const struct http_request *req)
{
    return request_conn(req)->state != CONN_CLOSING;
}

void http_request_respond(struct http_request *req, int status, const char *content_type,
                          const void *body, size_t len, const struct http_header *extra,
                          size_t n_extra)
{
    struct conn *c = request_conn(req);

    assert(c->req_outstanding);
    c->req_outstanding = false;
    if (c->state == CONN_CLOSING) {
        /*
         * The client went away; the answer goes nowhere. If both handles
         * have already closed, on_conn_handle_closed left the free to us.
         */
        metrics_http_request(c->srv->metrics, req->route->name, status,
                             clock_mono_ns() - req->start_ns);
        if (c->pending_closes == 0)
            conn_free(c);
        return;
    }
    assert(c->state == CONN_HANDLING);
    conn_respond(c, status, content_type, body, len, extra, n_extra);
}

void http_request_respond_error(struct http_request *req, int status, const char *code,
                                const char *message, const struct http_header *extra,
                                size_t n_extra)
{
    struct conn *c = request_conn(req);

    assert(c->req_outstanding);
    if (c->state == CONN_CLOSING) {
        http_request_respond(req, status, NULL, NULL, 0, NULL, 0);
        return;
    }
    c->req_outstanding = false;
    conn_respond_error(c, status, code, message, extra, n_extra);
}

/* --------------------------------------------------------------- accepting */

/* Past max_connections: one 503 and close, without parsing anything. */
static void conn_reject(struct conn *c)
{
    struct http_header retry = {"Retry-After", "1"};

    metrics_inc(c->srv->metrics, METRICS_C_CONNECTIONS_REJECTED);
    c->state = CONN_HANDLING;
    c->linger = true;
    c->close_after = true;
    conn_respond_error(c, 503, "overloaded", "too many connections", &retry, 1);
}

/*
 * Sets up a conn whose tcp handle is initialised and connected. Over the
 * connection cap we still accept, so the client gets a 503 it can act on
 * (Retry-After) instead of a connection left waiting in the backlog.
 */
static void conn_start(struct conn *c)
{
    struct http_server *srv = c->srv;

    uv_timer_init(srv->loop, &c->timer);
    (void)uv_tcp_nodelay(&c->tcp, 1); /* fails harmlessly on a socketpair */
    if (srv->n_counted >= srv->limits.max_connections) {
        conn_reject(c);
        return;
    }
    c->counted = true;
    srv->n_counted++;
    metrics_gauge_set(srv->metrics, METRICS_G_CONNECTIONS, srv->n_counted);
    conn_arm_timer(c);
    conn_read_start(c);
}

/* A conn whose tcp handle is initialised but unusable: close without serving. */
static void conn_abort(struct conn *c)
{
    uv_timer_init(c->srv->loop, &c->timer);
    conn_close(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct http_server *srv = container_of((uv_tcp_t *)listener, struct http_server, listener);
    struct conn *c;

    if (status < 0) {
        log_warn("http: accept failed: %s", uv_strerror(status));
        return;
    }
    c = conn_new(srv);
    uv_tcp_init(srv->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_abort(c);
        return;
    }
    conn_start(c);
}

int http_server_adopt(struct http_server *srv, uv_os_sock_t sock)
{
    struct conn *c = conn_new(srv);
    int err;

    uv_tcp_init(srv->loop, &c->tcp);
    err = uv_tcp_open(&c->tcp, sock);
    if (err) {
        close(sock);
        conn_abort(c);
        return err;
    }
    conn_start(c);
    return 0;
}

/* ------------------------------------------------------------------ server */

struct http_server *http_server_create(uv_loop_t *loop, const struct http_server_limits *limits,
                                       struct metrics *metrics)
{
    struct http_server *srv = xcalloc(1, sizeof(*srv));

    srv->loop = loop;
    srv->limits = *limits;
    srv->metrics = metrics;
    list_init(&srv->conns);
    /* Initialised now so that stop() can always close it and report asynchronously. */
    uv_tcp_init(loop, &srv->listener);
    return srv;
}

void http_server_route(struct http_server *srv, const char *method, const char *path,
                       const char *name, http_handler_cb cb, void *data)
{
    struct route *r;
    size_t len = strlen(path);

    srv->routes = xrealloc(srv->routes, (srv->n_routes + 1) * sizeof(*srv->routes));
    r = &srv->routes[srv->n_routes++];
    r->prefix = len > 0 && path[len - 1] == '*';
    r->path_len = r->prefix ? len - 1 : len;
    r->path = xstrndup(path, r->path_len);
    r->method = method;
    r->name = name;
    r->cb = cb;
    r->data = data;
}

int http_server_listen(struct http_server *srv, const char *host, int port)
{
    struct sockaddr_storage ss;
    int err;

    /* uv_ip4_addr rejects IPv6 literals, so trying it first decides the family. */
    err = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
    if (err)
        err = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
    if (err)
        return err;
    err = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
    if (!err)
        err = uv_listen((uv_stream_t *)&srv->listener, LISTEN_BACKLOG, on_connection);
    return err;
}

int http_server_port(const struct http_server *srv)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void on_listener_closed(uv_handle_t *h)
{
    struct http_server *srv = container_of((uv_tcp_t *)h, struct http_server, listener);

    srv->listener_closed = true;
    server_maybe_stopped(srv);
}

/*
 * Idle conns close now; busy ones get Connection: close on their response.
 * A conn in the middle of receiving a request counts as busy: it is
 * answered, or cut off by its header or idle timeout.
 */
static void conn_stop(struct conn *c)
{
    switch (c->state) {
    case CONN_READING:
        if (c->phase == PHASE_IDLE)
            conn_close(c);
        break;
    case CONN_WRITING:
        c->close_after = true;
        c->linger = false;
        break;
    case CONN_LINGERING:
        conn_close(c);
        break;
    case CONN_HANDLING:
    case CONN_CLOSING:
        break;
    }
}

void http_server_stop(struct http_server *srv, http_server_closed_cb cb, void *data)
{
    struct list_node *n, *tmp;

    /* A second call (a handler and main both stopping) keeps the first callback. */
    if (srv->stopping)
        return;
    srv->stopping = true;
    srv->closed_cb = cb;
    srv->closed_data = data;
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    list_for_each_safe (n, tmp, &srv->conns)
        conn_stop(container_of(n, struct conn, node));
}

void http_server_free(struct http_server *srv)
{
    size_t i;

    if (!srv)
        return;
    assert(list_empty(&srv->conns));
    for (i = 0; i < srv->n_routes; i++)
        xfree(srv->routes[i].path);
    xfree(srv->routes);
    xfree(srv);
}
