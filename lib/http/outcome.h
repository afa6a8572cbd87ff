/*
 * outcome.h: what to do after any outbound HTTP call (upstream digest, Bot
 * connector, token and key fetches): ok, retry, or give up. One table, SPEC
 * §6 and research/botframework.md §4.5. Pure.
 */
#pragma once

/*
 * What to do after an outbound HTTP call (SPEC §6, research/botframework.md
 * §4.5). One table for the upstream and the Bot connector.
 */
enum http_outcome {
    HTTP_OUTCOME_OK = 0,    /* 2xx */
    HTTP_OUTCOME_RETRYABLE, /* back off and try again (attempts permitting) */
    HTTP_OUTCOME_FINAL,     /* retrying cannot help: fail the job */
};

/*
 * err is the transport result (0 when an HTTP status arrived), status the
 * HTTP status (ignored when err != 0).
 * - err != 0: DG_ERR_TIMEOUT, DG_ERR_UNAVAILABLE, DG_ERR_CLOSED and every
 *   libuv code (connection refused/reset, DNS, timeouts) are retryable; our
 *   other codes (DG_ERR_TOO_LARGE for an oversized reply, DG_ERR_PROTOCOL,
 *   DG_ERR_BAD_JSON, …) are final, since the same request gets the same answer.
 * - err == 0: 2xx ok; 412, 429, 502, 503, 504 retryable; anything else final
 *   (403 included, whatever its code, and 500: Teams says not to retry it).
 * The HTTP client is expected to map curl's connect/DNS/send/recv failures to
 * DG_ERR_UNAVAILABLE and its timeouts to DG_ERR_TIMEOUT.
 */
enum http_outcome http_outcome_classify(int err, long status);

/* "ok", "retryable", "final": for logs and metrics labels. */
const char *http_outcome_name(enum http_outcome outcome);
