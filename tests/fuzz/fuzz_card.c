/*
 * fuzz_card.c: differential libFuzzer target for the acknowledgment
 * activity. card_render_ack writes the text by hand; card_ack + card_render
 * build it with json-c, the reference. For any strings both must give the
 * same answer and, on success, the same bytes; anything else aborts.
 *
 * Input: byte 0 picks the state (mod 3), bytes 1-2 a bit per field that is
 * passed as NULL instead of its string; the rest is the ten strings, in the
 * order of the fields below, separated by NUL bytes (missing ones are "").
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "teams/card.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_FIELDS 10

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *f[N_FIELDS];
    struct card_address to;
    struct card_ack_info in;
    unsigned nulls;
    char *copy, *p, *end, *a = NULL, *b = NULL;
    size_t la = 0, lb = 0, i;
    int ra, rb;

    if (size < 3)
        return 0;
    nulls = (unsigned)data[1] | (unsigned)data[2] << 8;
    /* One NUL more at the end, so the last string is terminated too. */
    copy = xmalloc(size - 3 + 1);
    memcpy(copy, data + 3, size - 3);
    copy[size - 3] = '\0';
    p = copy;
    end = copy + (size - 3);
    for (i = 0; i < N_FIELDS; i++) {
        f[i] = p <= end ? p : "";
        if (p <= end)
            p += strlen(p) + 1;
        if (nulls & (1u << i))
            f[i] = NULL;
    }
    memset(&to, 0, sizeof(to));
    to.bot_id = f[0];
    to.bot_name = f[1];
    to.user_id = f[2];
    to.user_name = f[3];
    to.conversation_id = f[4];
    to.reply_to_id = f[5];
    to.activity_id = f[6];
    in.audience = f[7];
    in.request_id = f[8];
    in.test_email = f[9];
    in.state = (enum card_ack_state)(data[0] % 3);

    ra = card_render(&to, card_ack(&in), &a, &la);
    rb = card_render_ack(&to, &in, &b, &lb);
    if (ra != rb || (ra == 0 && (la != lb || memcmp(a, b, la) != 0 || strlen(b) != lb))) {
        fprintf(stderr, "fuzz_card: json-c %d (%zu bytes) vs writer %d (%zu bytes)\n%s\n%s\n", ra,
                la, rb, lb, a ? a : "", b ? b : "");
        abort();
    }
    if (ra != 0 && (a || b))
        abort(); /* a refusal leaves no text */
    xfree(a);
    xfree(b);
    xfree(copy);
    return 0;
}
