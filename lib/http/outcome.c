/*
 * outcome.c: the classification table of outcome.h.
 */
#include "http/outcome.h"

#include <uv.h>

#include "core/common.h"

/* Transport failures: those a later attempt may not meet again. */
static enum http_outcome transport_outcome(int err)
{
    switch (err) {
    case DG_ERR_TIMEOUT:
    case DG_ERR_UNAVAILABLE:
    case DG_ERR_CLOSED: /* shutdown cut the call short: another worker retries */
    case UV_ETIMEDOUT:
    case UV_ECONNREFUSED:
    case UV_ECONNRESET:
    case UV_ECONNABORTED:
    case UV_EPIPE:
    case UV_EOF:
    case UV_ECANCELED:
    case UV_EHOSTUNREACH:
    case UV_ENETUNREACH:
    case UV_ENETDOWN:
    case UV_EADDRNOTAVAIL:
    case UV_EAI_AGAIN:
    case UV_EAI_FAIL:
    case UV_EAI_NONAME:
    case UV_EMFILE: /* our own fd budget: nothing was sent, later there is room */
    case UV_ENFILE:
    case UV_ENOBUFS:
        return HTTP_OUTCOME_RETRYABLE;
    default:
        return HTTP_OUTCOME_FINAL;
    }
}

enum http_outcome http_outcome_classify(int err, long status)
{
    if (err != 0)
        return transport_outcome(err);
    if (status >= 200 && status <= 299)
        return HTTP_OUTCOME_OK;
    switch (status) {
    case 412: /* PreconditionFailed: concurrent operations on the conversation */
    case 429: /* Throttled: the caller honours Retry-After */
    case 502:
    case 503:
    case 504:
        return HTTP_OUTCOME_RETRYABLE;
    default:
        return HTTP_OUTCOME_FINAL;
    }
}

const char *http_outcome_name(enum http_outcome outcome)
{
    switch (outcome) {
    case HTTP_OUTCOME_OK:
        return "ok";
    case HTTP_OUTCOME_RETRYABLE:
        return "retryable";
    case HTTP_OUTCOME_FINAL:
        return "final";
    }
    return "final";
}
