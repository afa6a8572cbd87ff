/*
 * test_outcome.c: the ok/retry/final table shared by every outbound call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <uv.h>

#include "core/common.h"
#include "http/outcome.h"

static void test_classify_status(void **state)
{
    static const struct {
        long status;
        enum http_outcome want;
    } cases[] = {
        {200, HTTP_OUTCOME_OK},        {201, HTTP_OUTCOME_OK},        {202, HTTP_OUTCOME_OK},
        {204, HTTP_OUTCOME_OK},        {299, HTTP_OUTCOME_OK},        {412, HTTP_OUTCOME_RETRYABLE},
        {429, HTTP_OUTCOME_RETRYABLE}, {502, HTTP_OUTCOME_RETRYABLE}, {503, HTTP_OUTCOME_RETRYABLE},
        {504, HTTP_OUTCOME_RETRYABLE}, {0, HTTP_OUTCOME_FINAL},       {100, HTTP_OUTCOME_FINAL},
        {199, HTTP_OUTCOME_FINAL},     {300, HTTP_OUTCOME_FINAL},     {301, HTTP_OUTCOME_FINAL},
        {304, HTTP_OUTCOME_FINAL},     {400, HTTP_OUTCOME_FINAL},     {401, HTTP_OUTCOME_FINAL},
        {403, HTTP_OUTCOME_FINAL},     {404, HTTP_OUTCOME_FINAL},     {408, HTTP_OUTCOME_FINAL},
        {409, HTTP_OUTCOME_FINAL},     {413, HTTP_OUTCOME_FINAL},     {500, HTTP_OUTCOME_FINAL},
        {501, HTTP_OUTCOME_FINAL},     {505, HTTP_OUTCOME_FINAL},     {599, HTTP_OUTCOME_FINAL},
        {-1, HTTP_OUTCOME_FINAL},
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        enum http_outcome got = http_outcome_classify(0, cases[i].status);

        if (got != cases[i].want)
            fail_msg("status %ld: got %s, want %s", cases[i].status, http_outcome_name(got),
                     http_outcome_name(cases[i].want));
    }
}

static void test_classify_transport(void **state)
{
    static const int retry[] = {
        DG_ERR_TIMEOUT,  DG_ERR_UNAVAILABLE, DG_ERR_CLOSED, UV_ETIMEDOUT,
        UV_ECONNREFUSED, UV_ECONNRESET,      UV_EPIPE,      UV_EHOSTUNREACH,
        UV_ENETUNREACH,  UV_EAI_AGAIN,       UV_EOF,
    };
    static const int final[] = {
        DG_ERR_TOO_LARGE, DG_ERR_BAD_JSON, DG_ERR_FIELD,
        DG_ERR_PROTOCOL,  DG_ERR_INVALID,  DG_ERR_CONFIG,
        UV_EINVAL,        UV_ENOMEM,       1,
    };
    size_t i;

    /* A transport error decides alone: the status (here a 200) is not looked at. */
    for (i = 0; i < ARRAY_SIZE(retry); i++) {
        if (http_outcome_classify(retry[i], 200) != HTTP_OUTCOME_RETRYABLE)
            fail_msg("err %d (%s) should be retryable", retry[i], dg_strerror(retry[i]));
    }
    for (i = 0; i < ARRAY_SIZE(final); i++) {
        if (http_outcome_classify(final[i], 503) != HTTP_OUTCOME_FINAL)
            fail_msg("err %d (%s) should be final", final[i], dg_strerror(final[i]));
    }
    assert_string_equal(http_outcome_name(HTTP_OUTCOME_OK), "ok");
    assert_string_equal(http_outcome_name(HTTP_OUTCOME_RETRYABLE), "retryable");
    assert_string_equal(http_outcome_name(HTTP_OUTCOME_FINAL), "final");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_status),
        cmocka_unit_test(test_classify_transport),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
