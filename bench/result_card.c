/*
 * result_card.c: the cost of rendering one worker's result card, json-c
 * tree (card_render_result_json, the old path) against the direct writer
 * (card_render_result), on a realistic digest: 20 candidates from the
 * upstream, 10 shown, every field filled, a few non-ASCII and escaped
 * characters. Run it under valgrind --tool=callgrind and take the
 * difference of two loop counts, which cancels the set-up:
 *
 *   cmake --build build-rel -j2 --target dg_teams
 *   cc -O2 -g -std=gnu11 -D_GNU_SOURCE -Ilib -isystem /usr/include/json-c bench/result_card.c \
 *      build-rel/libdg_teams.a build-rel/libdg_digest.a build-rel/libdg_core.a \
 *      -ljson-c -lm -o /tmp/result_card
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null /tmp/result_card json 1000
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null /tmp/result_card json 2000
 *   (the same with "direct"; the Ir lines of the summaries)
 *
 * Without valgrind it prints the wall time per card.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "digest/digest.h"
#include "teams/card.h"

static const struct card_address TO = {
    .bot_id = "28:c9e8c047-2a74-40a2-b28a-b162d5f5327c",
    .bot_name = "Digest Bot",
    .user_id = "29:1XJKJMvc5GBtc2JwZq0oj8tHZmzrQgFmB39ATiQWA85gQtHieVkKilBZ9XHoq9j7Zaqt7CZ",
    .user_name = "Megan Bowen",
    .conversation_id = "a:17I0kl9EkpE1O9NdxrmUwJLQY3H8QyBUiy0GnKEJRC0A",
    .reply_to_id = "1481567603816",
};

/* An upstream reply of n candidates, like the digest service's. */
static void upstream_reply(struct buf *b, size_t n)
{
    size_t i;

    if (buf_append_str(b, "{\"audience\":\"advisors\",\"generated_at\":\"2025-03-01T08:00:00Z\","
                          "\"items\":[") != 0)
        abort();
    for (i = 0; i < n; i++) {
        if (buf_printf(b,
                       "%s{\"name\":\"Candidate %zu Zo\\u00eb O'Brien\",\"title\":\"Chief "
                       "Technology Officer\",\"company\":\"Analytical Engines %zu Ltd\","
                       "\"location\":\"London, UK\",\"summary\":\"Led the team that shipped "
                       "the first general-purpose engine; \\\"hands-on\\\" leader with 15 years "
                       "in distributed systems, payments and developer platforms \\u2014 "
                       "grew the org from 5 to 120 engineers.\\nOpen to advisory roles.\","
                       "\"url\":\"https://example.com/candidates/%zu?src=digest&id=%zu\"}",
                       i ? "," : "", i, i, i, i) != 0)
            abort();
    }
    if (buf_append_str(b, "]}") != 0)
        abort();
}

int main(int argc, char **argv)
{
    struct digest d;
    struct card_result_info in = {"advisors", "0d9f1c2e-7b4a-4c1e-9a55-3f2b8c6d7e10", NULL, &d};
    struct timespec t0, t1;
    struct buf b;
    size_t i, n, len = 0, total = 0, shown = 0;
    bool json;
    char *out;

    if (argc != 3 || (strcmp(argv[1], "json") != 0 && strcmp(argv[1], "direct") != 0)) {
        fprintf(stderr, "usage: %s json|direct N\n", argv[0]);
        return 2;
    }
    json = strcmp(argv[1], "json") == 0;
    n = strtoul(argv[2], NULL, 10);
    buf_init(&b, 1u << 20);
    upstream_reply(&b, 20);
    if (digest_parse(&d, b.data, b.len) != 0)
        abort();
    buf_free(&b);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < n; i++) {
        int rc = json ? card_render_result_json(&TO, &in, &out, &len, &shown)
                      : card_render_result(&TO, &in, &out, &len, &shown);

        if (rc != 0)
            abort();
        total += len;
        xfree(out);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%s: %zu cards of %zu bytes, %zu candidates shown, %.2f us per card\n", argv[1], n,
           n ? total / n : 0, shown,
           ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 /
               (double)(n ? n : 1));
    digest_free(&d);
    return 0;
}
