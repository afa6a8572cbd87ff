/*
 * test_job.c: one job's state machine (src/digestd/job.c, docs/worker.md)
 * against a real redis-server, through the real queue connection and the
 * real job_store scripts. The connector, the upstream fetch and the parts
 * of worker.c a job calls are faked here at link level: each fake holds
 * its callback until the test answers it, so a test decides what the
 * upstream and Teams say and when, and reads Redis after every step.
 * Covered: begin → fetch → render → fence → send → delivered → ack update;
 * an ended record (skipped); a retryable fetch (wait, begin again); a
 * final fetch error (failed, error card); a fence refused (not ours), told
 * to wait (another process's send marked), or handing over a late result;
 * a send held at the lease's end (fence again); a lease lost during the
 * send (cancelled, nothing recorded) and a 2xx after the loss (kept as
 * late); Redis away at the fence (nothing posted until it is back).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "config.h"
#include "core/buf.h"
#include "core/log.h"
#include "digest/digest.h"
#include "digest/upstream.h"
#include "http/http_client.h"
#include "metrics.h"
#include "redis_server.h"
#include "store/queue.h"
#include "teams/card.h"
#include "teams/connector.h"
#include "worker_internal.h"

#define STREAM "{digest}:requests"
#define CONV "msteams:19:abc@thread.v2"
#define DIGEST_JSON                                                                                \
    "{\"audience\":\"advisors\",\"generated_at\":\"2024-05-01T08:00:00Z\",\"items\":[{\"name\":"   \
    "\"Ada\",\"title\":\"CTO\",\"company\":\"Acme\",\"location\":\"Paris\",\"summary\":\"x\"}]}"
#define MAX_CALLS 16

/* ---- the fakes ---------------------------------------------------------- */

struct connector_call {
    int n; /* index in F.calls */
};

struct fake_call {
    enum connector_op op;
    bool card; /* connector_send_error/_ack: the error card or the ack update */
    bool is_result;
    uint64_t hold_until_ms;
    connector_done_cb cb;
    void *data;
    bool done;
    bool cancelled;
    struct connector_call handle;
};

static struct {
    struct fake_call calls[MAX_CALLS];
    int n_calls;
    upstream_cb fetch_cb;
    void *fetch_data;
    int n_fetches;
    bool fetch_cancelled;
    int finished;
} F;

int connector_send_call(struct connector *c, const struct connector_msg *msg,
                        const struct connector_opts *opts, uint64_t hold_until_ms,
                        connector_done_cb cb, void *data, struct connector_call **out)
{
    struct fake_call *fc;

    assert_true(F.n_calls < MAX_CALLS);
    fc = &F.calls[F.n_calls];
    memset(fc, 0, sizeof(*fc));
    fc->op = msg->op;
    fc->is_result = true;
    fc->hold_until_ms = hold_until_ms;
    fc->cb = cb;
    fc->data = data;
    fc->handle.n = F.n_calls++;
    if (out)
        *out = &fc->handle;
    return 0;
}

int connector_send(struct connector *c, const struct connector_msg *msg,
                   const struct connector_opts *opts, connector_done_cb cb, void *data)
{
    return connector_send_call(c, msg, opts, 0, cb, data, NULL);
}

/* Every card send (acknowledgment update, error card, a json-c card) is one recorded call. */
static int fake_card_call(enum connector_op op, connector_done_cb cb, void *data)
{
    struct fake_call *fc;

    assert_true(F.n_calls < MAX_CALLS);
    fc = &F.calls[F.n_calls];
    memset(fc, 0, sizeof(*fc));
    fc->op = op;
    fc->card = true;
    fc->cb = cb;
    fc->data = data;
    fc->handle.n = F.n_calls++;
    return 0;
}

int connector_send_card(struct connector *c, enum connector_op op, const char *service_url,
                        const struct card_address *to, struct json_object *card,
                        const char *request_id, const struct connector_opts *opts,
                        connector_done_cb cb, void *data)
{
    json_object_put(card);
    return fake_card_call(op, cb, data);
}

/* The acknowledgment update, written straight to a buffer by the real one. */
int connector_send_ack(struct connector *c, enum connector_op op, const char *service_url,
                       const struct card_address *to, const struct card_ack_info *ack,
                       const char *request_id, const struct connector_opts *opts,
                       connector_done_cb cb, void *data)
{
    (void)c, (void)service_url, (void)to, (void)ack, (void)request_id, (void)opts;
    return fake_card_call(op, cb, data);
}

/* The error card, written straight to a buffer by the real one. */
int connector_send_error(struct connector *c, enum connector_op op, const char *service_url,
                         const struct card_address *to, const struct card_error_info *error,
                         const char *request_id, const struct connector_opts *opts,
                         connector_done_cb cb, void *data)
{
    (void)c, (void)service_url, (void)to, (void)error, (void)request_id, (void)opts;
    return fake_card_call(op, cb, data);
}

/* Answers call n: status 0 = 2xx with id, else a rejection with that status. */
static void answer(int n, long status, int64_t retry_after_s, bool held)
{
    struct fake_call *fc = &F.calls[n];
    struct connector_result res = {.status = status ? status
                                             : held ? 0
                                                    : 201,
                                   .retry_after_s = retry_after_s,
                                   .activity_id = "result-act",
                                   .held = held};

    assert_false(fc->done);
    fc->done = true;
    if (held) {
        res.err = DG_ERR_TIMEOUT;
        res.outcome = HTTP_OUTCOME_RETRYABLE;
    } else if (status) {
        res.err = DG_ERR_PROTOCOL;
        res.outcome = http_outcome_classify(0, status);
    } else {
        res.outcome = HTTP_OUTCOME_OK;
    }
    fc->cb(&res, fc->data);
}

void connector_call_cancel(struct connector_call *call)
{
    struct fake_call *fc = &F.calls[call->n];
    struct connector_result res = {.err = DG_ERR_CLOSED,
                                   .outcome = HTTP_OUTCOME_RETRYABLE,
                                   .retry_after_s = -1,
                                   .held = true,
                                   .activity_id = ""};

    fc->cancelled = true;
    fc->done = true;
    fc->cb(&res, fc->data);
}

int upstream_fetch(struct http_client *hc, const struct config *cfg, const char *audience,
                   upstream_cb cb, void *data, struct http_client_call **call)
{
    F.fetch_cb = cb;
    F.fetch_data = data;
    F.n_fetches++;
    if (call)
        *call = (struct http_client_call *)&F; /* only ever passed back to the fake cancel */
    return 0;
}

void http_client_cancel(struct http_client_call *call)
{
    struct upstream_result res = {.err = DG_ERR_CLOSED,
                                  .outcome = HTTP_OUTCOME_FINAL,
                                  .retry_after_s = -1,
                                  .detail = "cancelled"};
    upstream_cb cb = F.fetch_cb;

    F.fetch_cancelled = true;
    F.fetch_cb = NULL;
    cb(&res, F.fetch_data);
}

static void fetch_answer(long status)
{
    struct digest d = {0};
    struct upstream_result res = {.status = status ? status : 200,
                                  .retry_after_s = -1,
                                  .detail = status ? "the digest service said no" : "ok"};
    upstream_cb cb = F.fetch_cb;

    assert_non_null(cb);
    F.fetch_cb = NULL;
    if (!status) {
        assert_int_equal(digest_parse(&d, DIGEST_JSON, strlen(DIGEST_JSON)), 0);
        res.digest = &d;
        res.outcome = HTTP_OUTCOME_OK;
    } else {
        res.err = DG_ERR_PROTOCOL;
        res.outcome = http_outcome_classify(0, status);
    }
    cb(&res, F.fetch_data);
    if (!status)
        digest_free(&d);
}

/* worker.c's side of a job. */
void worker_index_add(struct worker *w, struct job *j)
{
}

void worker_index_remove(struct worker *w, struct job *j)
{
}

void worker_job_finished(struct worker *w)
{
    F.finished++;
}

/* ---- the fixture -------------------------------------------------------- */

struct fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    struct config cfg;
    struct metrics *metrics;
    struct redis_server srv;
    struct queue *q;
    redisContext *rc;
    struct worker w;
    int stopped;
    char stream_id[64];
    struct job_fields f;
};

static bool is_ready(void *arg)
{
    return queue_ready(arg);
}

static bool is_stopped(void *arg)
{
    return ((struct fixture *)arg)->stopped > 0;
}

static void on_stopped(struct queue *q, void *data)
{
    ((struct fixture *)data)->stopped++;
}

static void set_str(char **field, const char *v)
{
    xfree(*field);
    *field = xstrdup(v);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    memset(&F, 0, sizeof(F));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->tick), 0);
    config_defaults(&f->cfg);
    log_setup(LOG_LEVEL_WARN, false);
    f->metrics = metrics_create();
    redis_server_start(&f->srv, false, NULL);
    f->cfg.redis_kind = REDIS_TCP;
    set_str(&f->cfg.redis_host, "127.0.0.1");
    f->cfg.redis_port = f->srv.port;
    f->cfg.retry_base_ms = 20;
    f->cfg.retry_max_ms = 40;
    f->cfg.worker_claim_idle_ms = 100; /* a marked send is waited out 100 + 100 + 1000 ms */
    f->cfg.connector_timeout_ms = 100;
    f->q = queue_create(&f->loop, &f->cfg, f->metrics);
    queue_start(f->q);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->q, 5000));
    f->rc = sync_connect(&f->srv, 0);
    assert_non_null(f->rc);
    f->w.loop = &f->loop;
    f->w.cfg = &f->cfg;
    f->w.queue = f->q;
    f->w.metrics = f->metrics;
    snprintf(f->w.consumer, sizeof(f->w.consumer), "host:1");
    snprintf(f->w.nonce, sizeof(f->w.nonce), "00000000000000aa");
    list_init(&f->w.jobs);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    queue_stop(f->q, on_stopped, f);
    assert_true(loop_run_until(&f->loop, &f->tick, is_stopped, f, 5000));
    queue_free(f->q);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    redisFree(f->rc);
    redis_server_cleanup(&f->srv);
    metrics_free(f->metrics);
    config_free(&f->cfg);
    xfree(f);
    return 0;
}

/* A job as the webhook writes it, read into our consumer's pending list. */
static void job_add(struct fixture *f, const char *rid)
{
    redisReply *r;

    freeReplyObject(sync_cmd(f->rc,
                             "HSET {digest}:conv:" CONV " service_url https://smba.example/emea/ "
                             "conversation_id 19:abc@thread.v2 bot_id 28:bot user_id 29:user"));
    r = sync_cmd(f->rc,
                 "XADD " STREAM " * request_id %s activity_id act-1 audience advisors "
                 "test_email '' conv " CONV " created_ms 1700000000000",
                 rid);
    snprintf(f->stream_id, sizeof(f->stream_id), "%s", r->str);
    freeReplyObject(r);
    freeReplyObject(sync_cmd(f->rc,
                             "HSET {digest}:req:%s status queued mode async attempts 0 "
                             "ack_activity_id ack-1",
                             rid));
    freeReplyObject(
        sync_cmd(f->rc, "XREADGROUP GROUP workers host:1 COUNT 1 STREAMS " STREAM " >"));
    f->f = (struct job_fields){.stream_id = f->stream_id,
                               .request_id = rid,
                               .activity_id = "act-1",
                               .audience = "advisors",
                               .test_email = "",
                               .conv = CONV,
                               .created_ms = "1700000000000"};
}

static char *hget(struct fixture *f, const char *rid, const char *field)
{
    redisReply *r = sync_cmd(f->rc, "HGET {digest}:req:%s %s", rid, field);
    char *v = r->type == REDIS_REPLY_STRING ? xstrdup(r->str) : NULL;

    freeReplyObject(r);
    return v;
}

static void assert_field(struct fixture *f, const char *rid, const char *field, const char *want)
{
    char *v = hget(f, rid, field);

    if (!want)
        assert_null(v);
    else
        assert_string_equal(v ? v : "(none)", want);
    xfree(v);
}

static bool fetch_waiting(void *arg)
{
    return F.fetch_cb != NULL;
}

static int calls_wanted;
static bool has_calls(void *arg)
{
    return F.n_calls >= calls_wanted;
}

static bool job_gone(void *arg)
{
    return F.finished > 0;
}

static void wait_fetch(struct fixture *f)
{
    assert_true(loop_run_until(&f->loop, &f->tick, fetch_waiting, NULL, 5000));
}

static void wait_calls(struct fixture *f, int n)
{
    calls_wanted = n;
    assert_true(loop_run_until(&f->loop, &f->tick, has_calls, NULL, 5000));
}

static void wait_gone(struct fixture *f)
{
    assert_true(loop_run_until(&f->loop, &f->tick, job_gone, NULL, 5000));
}

static struct job *the_job(struct fixture *f)
{
    struct list_node *n = list_first(&f->w.jobs);

    assert_non_null(n);
    return container_of(n, struct job, node);
}

/* ---- the transitions ---------------------------------------------------- */

/* begin → fetch → render → fence → send → delivered (+XACK) → ack update → gone. */
static void happy_path_records_then_updates_the_ack_once(void **state)
{
    struct fixture *f = *state;

    job_add(f, "r1");
    worker_job_start(&f->w, &f->f);
    wait_fetch(f);
    assert_field(f, "r1", "status", "processing");
    assert_field(f, "r1", "attempts", "1");
    fetch_answer(0);
    wait_calls(f, 1); /* the fence came first, then the send */
    assert_true(F.calls[0].is_result);
    assert_true(F.calls[0].hold_until_ms > 0);
    assert_field(f, "r1", "send_consumer", "host:1");
    answer(0, 0, -1, false);
    wait_calls(f, 2);
    assert_field(f, "r1", "status", "delivered");
    assert_field(f, "r1", "result_activity_id", "result-act");
    {
        redisReply *p = sync_cmd(f->rc, "XPENDING " STREAM " workers");
        assert_int_equal(p->element[0]->integer, 0); /* acknowledged in the same step */
        freeReplyObject(p);
    }
    assert_true(F.calls[1].card && F.calls[1].op == CONNECTOR_UPDATE);
    answer(1, 0, -1, false);
    wait_gone(f);
    assert_int_equal(F.n_calls, 2);
}

/* A record that says ended: acknowledged only, nothing fetched or sent. */
static void ended_record_is_skipped(void **state)
{
    struct fixture *f = *state;

    job_add(f, "r2");
    freeReplyObject(sync_cmd(f->rc, "HSET {digest}:req:r2 status delivered"));
    worker_job_start(&f->w, &f->f);
    wait_gone(f);
    assert_int_equal(F.n_fetches, 0);
    assert_int_equal(F.n_calls, 0);
}

/* A retryable fetch waits and begins again (attempts 2); a final one fails with an error card. */
static void fetch_retry_then_final_failure(void **state)
{
    struct fixture *f = *state;

    job_add(f, "r3");
    worker_job_start(&f->w, &f->f);
    wait_fetch(f);
    fetch_answer(503);
    wait_fetch(f);
    assert_field(f, "r3", "attempts", "2");
    fetch_answer(400);
    wait_calls(f, 1);
    assert_field(f, "r3", "status", "failed");
    assert_true(F.calls[0].card && F.calls[0].op == CONNECTOR_REPLY); /* the error card */
    answer(0, 0, -1, false);
    wait_calls(f, 2);
    assert_true(F.calls[1].op == CONNECTOR_UPDATE);
    answer(1, 0, -1, false);
    wait_gone(f);
}

/* The entry went to another consumer before the fence: nothing is sent or recorded. */
static void fence_not_ours_sends_nothing(void **state)
{
    struct fixture *f = *state;

    job_add(f, "r4");
    worker_job_start(&f->w, &f->f);
    wait_fetch(f);
    freeReplyObject(sync_cmd(f->rc, "XCLAIM " STREAM " workers other:2 0 %s JUSTID", f->stream_id));
    fetch_answer(0);
    wait_gone(f);
    assert_int_equal(F.n_calls, 0);
    assert_field(f, "r4", "status", "processing");
    assert_field(f, "r4", "send_token", NULL);
}

/* Another process marked a send: waited out (1.2 s here), then sent as an unknown outcome. */
static void fence_waits_out_another_processes_send(void **state)
{
    struct fixture *f = *state;
    uint64_t t0;

    job_add(f, "r5");
    freeReplyObject(sync_cmd(f->rc, "HSET {digest}:req:r5 send_token 00000000000000bb/x/1 "
                                    "send_consumer other:2 send_ms 0"));
    /* A mark of "now" by Redis's clock. */
    freeReplyObject(sync_cmd(f->rc, "EVAL %s 1 {digest}:req:r5",
                             "local t = redis.call('TIME') redis.call('HSET', KEYS[1], "
                             "'send_ms', t[1] * 1000 + math.floor(t[2] / 1000))"));
    t0 = uv_hrtime();
    worker_job_start(&f->w, &f->f);
    wait_fetch(f);
    fetch_answer(0);
    wait_calls(f, 1);
    assert_true(uv_hrtime() - t0 >= 1000ull * 1000000);
    assert_int_equal(metrics_job_outcome_count(f->metrics, "resent_unknown"), 1);
    answer(0, 0, -1, false);
    wait_calls(f, 2);
    assert_field(f, "r5", "status", "delivered");
    answer(1, 0, -1, false);
    wait_gone(f);
}

/* A late result of an earlier holder is recorded instead of a send. */
static void fence_hands_over_a_late_result(void **state)
{
    struct fixture *f = *state;

    job_add(f, "r6");
    freeReplyObject(sync_cmd(f->rc, "HSET {digest}:req:r6 late_result_activity_id late-7"));
    worker_job_start(&f->w, &f->f);
    wait_fetch(f);
    fetch_answer(0);
    wait_calls(f, 1);
    assert_true(F.calls[0].op == CONNECTOR_UPDATE); /* the ack update only: no result post */
    assert_field(f, "r6", "status", "delivered");
    assert_field(f, "r6", "result_activity_id", "late-7");
    answer(0, 0, -1, false);
    wait_gone(f);
}

/* A send held at the lease's end (its retry could not leave in time): fenced and sent again. */
static void held_send_is_fenced_again(void **state)
{
    struct fixture *f = *state;

    job_add(f, "r7");
    worker_job_start(&f->w, &f->f);
    wait_fetch(f);
    fetch_answer(0);
    wait_calls(f, 1);
    answer(0, 429, 0, true);
    wait_calls(f, 2);
    assert_true(F.calls[1].is_result);
    assert_field(f, "r7", "attempts", "2");
    /* Held before anything reached Teams (a long pacing queue): fenced again, not an attempt. */
    answer(1, 0, -1, true);
    wait_calls(f, 3);
    assert_true(F.calls[2].is_result);
    assert_field(f, "r7", "attempts", "2");
    answer(2, 0, -1, false);
    wait_calls(f, 4);
    assert_field(f, "r7", "status", "delivered");
    answer(3, 0, -1, false);
    wait_gone(f);
}

/* The lease lost while the send waits: the call is cancelled, nothing recorded. */
static void lost_during_send_cancels_it(void **state)
{
    struct fixture *f = *state;

    job_add(f, "r8");
    worker_job_start(&f->w, &f->f);
    wait_fetch(f);
    fetch_answer(0);
    wait_calls(f, 1);
    worker_job_lost(the_job(f));
    assert_true(F.calls[0].cancelled);
    wait_gone(f);
    assert_int_equal(F.n_calls, 1);
    assert_field(f, "r8", "status", "processing");
}

/* A 2xx after the loss (the request was in flight): kept as late, not ours, no ack update. */
static void success_after_the_loss_is_kept_as_late(void **state)
{
    struct fixture *f = *state;
    struct job *j;

    job_add(f, "r9");
    worker_job_start(&f->w, &f->f);
    wait_fetch(f);
    fetch_answer(0);
    wait_calls(f, 1);
    j = the_job(f);
    /* In flight: the fake's cancel would finish it, so the loss comes as a claim in Redis. */
    freeReplyObject(sync_cmd(f->rc, "XCLAIM " STREAM " workers other:2 0 %s JUSTID", f->stream_id));
    j->lost = true;
    answer(0, 0, -1, false);
    wait_gone(f);
    assert_int_equal(F.n_calls, 1);
    assert_field(f, "r9", "status", "processing");
    assert_field(f, "r9", "late_result_activity_id", "result-act");
    assert_int_equal(metrics_job_outcome_count(f->metrics, "late"), 1);
}

/* Redis unreachable (frozen: commands time out) at the result: no post until it answers. */
static void redis_away_at_the_fence_posts_nothing_until_back(void **state)
{
    struct fixture *f = *state;

    job_add(f, "r10");
    worker_job_start(&f->w, &f->f);
    wait_fetch(f);
    kill(f->srv.pid, SIGSTOP);
    fetch_answer(0);
    loop_run_for(&f->loop, &f->tick, 3000); /* past the 2 s command timeout, and a retry */
    assert_int_equal(F.n_calls, 0);
    kill(f->srv.pid, SIGCONT);
    wait_calls(f, 1);
    assert_true(F.calls[0].is_result);
    assert_field(f, "r10", "send_consumer", "host:1");
    answer(0, 0, -1, false);
    wait_calls(f, 2);
    answer(1, 0, -1, false);
    wait_gone(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(happy_path_records_then_updates_the_ack_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(ended_record_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_retry_then_final_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(fence_not_ours_sends_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(fence_waits_out_another_processes_send, setup, teardown),
        cmocka_unit_test_setup_teardown(fence_hands_over_a_late_result, setup, teardown),
        cmocka_unit_test_setup_teardown(held_send_is_fenced_again, setup, teardown),
        cmocka_unit_test_setup_teardown(lost_during_send_cancels_it, setup, teardown),
        cmocka_unit_test_setup_teardown(success_after_the_loss_is_kept_as_late, setup, teardown),
        cmocka_unit_test_setup_teardown(redis_away_at_the_fence_posts_nothing_until_back, setup,
                                        teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
