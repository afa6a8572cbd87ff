/* upstream.c: one digest fetch over curl multi. */
#include "digest/upstream.h"

#include <string.h>

#include "core/buf.h"
#include "config.h"
#include "http/http_client.h"
#include "core/log.h"
#include "core/url.h"

struct fetch {
    upstream_cb cb;
    void *data;
};

char *upstream_url(const struct config *cfg, const char *audience)
{
    const char *tpl = cfg->upstream_url;
    const char *at = strstr(tpl, "{audience}");
    struct buf b;

    buf_init(&b, HTTP_MAX_URL_BYTES);
    /* config.c guarantees the placeholder; the cap only guards the length. */
    if (!at || buf_append(&b, tpl, (size_t)(at - tpl)) != 0 ||
        url_encode_component(&b, audience) != 0 || buf_append_str(&b, at + 10) != 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_take(&b);
}

static void on_response(const struct http_client_response *res, void *data)
{
    struct fetch *f = data;
    struct upstream_result r = {
        .err = res->err,
        .status = res->status,
        .retry_after_s = res->retry_after_s,
        .detail = "",
    };
    struct digest d;

    r.outcome = http_outcome_classify(res->err, res->status);
    if (r.outcome != HTTP_OUTCOME_OK) {
        r.detail = res->err ? res->error : "the digest service answered with an error";
        f->cb(&r, f->data);
    } else {
        r.err = digest_parse(&d, res->body->data ? res->body->data : "", res->body->len);
        if (r.err) {
            /* The same request would get the same broken answer. */
            r.outcome = HTTP_OUTCOME_FINAL;
            r.detail = "the digest service sent a reply we cannot read";
            f->cb(&r, f->data);
        } else {
            r.digest = &d;
            f->cb(&r, f->data);
            digest_free(&d);
        }
    }
    xfree(f);
}

int upstream_fetch(struct http_client *hc, const struct config *cfg, const char *audience,
                   upstream_cb cb, void *data, struct http_client_call **call)
{
    static const char *const headers[] = {"Accept: application/json"};
    static const enum metrics_hist hist = METRICS_H_UPSTREAM;
    struct http_client_request req = {
        .method = "GET",
        .headers = headers,
        .n_headers = ARRAY_SIZE(headers),
        .timeout_ms = cfg->upstream_timeout_ms,
        .max_response_bytes = DIGEST_MAX_BODY_BYTES,
        .hist = &hist,
    };
    struct fetch *f;
    char *url = upstream_url(cfg, audience);
    int err;

    if (!url)
        return DG_ERR_INVALID;
    req.url = url;
    f = xmalloc(sizeof(*f));
    f->cb = cb;
    f->data = data;
    err = http_client_send(hc, &req, on_response, f, call);
    xfree(url);
    if (err)
        xfree(f);
    return err;
}
