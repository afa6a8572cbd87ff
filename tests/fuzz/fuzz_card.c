/*
 * fuzz_card.c: differential libFuzzer target for the activities written
 * without json-c. card_render_ack, card_render_result and card_render_error
 * write the text by hand; card_ack/card_error + card_render and
 * card_render_result_json build it with json-c, the reference. For any input
 * both must give the same answer and, on success, the same bytes (and the
 * same number of candidates shown); anything else aborts.
 *
 * Input: byte 0 picks the card (mod 5: 0-2 the acknowledgment in that state,
 * 3 the result, 4 the error), bytes 1-2 a bit per string that is passed as
 * NULL instead of its string; for the result, bytes 3-7 shape the digest
 * (see below). The rest is NUL-separated strings (missing ones are ""): the
 * seven of the address, then the card's own, then for the result a pool the
 * candidates take their six fields from in turn.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "digest/digest.h"
#include "teams/card.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_STRINGS 64
#define MAX_ITEMS (CARD_MAX_ITEMS + 4)
/* Big enough to move the size limit's cut across every candidate, small enough to stay fast. */
#define MAX_BIG_BYTES (48u * 1024)

static char empty[1];

static void differ(const char *what, int ra, size_t la, const char *a, int rb, size_t lb,
                   const char *b)
{
    fprintf(stderr, "fuzz_card %s: json-c %d (%zu bytes) vs writer %d (%zu bytes)\n%s\n%s\n", what,
            ra, la, rb, lb, a ? a : "", b ? b : "");
    abort();
}

static void compare(const char *what, int ra, char *a, size_t la, int rb, char *b, size_t lb)
{
    if (ra != rb || (ra == 0 && (la != lb || memcmp(a, b, la) != 0 || strlen(b) != lb)))
        differ(what, ra, la, a, rb, lb, b);
    if (ra != 0 && (a || b))
        abort(); /* a refusal leaves no text */
    xfree(a);
    xfree(b);
}

/*
 * Bytes 3-7 of a result input: byte 3 the number of candidates kept (mod
 * MAX_ITEMS + 1), byte 4 how many more the upstream had (n_total - n_items;
 * 255 = n_total 0), bytes 5-6 a repeat count and byte 7 a mask: candidate i
 * with bit i % 8 set gets as summary the first pool string repeated that many
 * times (capped at MAX_BIG_BYTES), to reach the size limit.
 */
static void fuzz_result(const uint8_t *shape, char *const *f, size_t n_f)
{
    struct digest_item items[MAX_ITEMS];
    struct digest d;
    struct card_address to;
    struct card_result_info in;
    char *const *pool = f + 11;
    size_t n_pool = n_f > 11 ? n_f - 11 : 0;
    size_t reps = (size_t)shape[2] | (size_t)shape[3] << 8;
    char *a = NULL, *b = NULL, *big = NULL, *field[6];
    size_t la = 0, lb = 0, sa = 1000, sb = 2000, i, j, next = 0;
    struct buf bb;
    int ra, rb;

    memset(&d, 0, sizeof(d));
    d.n_items = shape[0] % (MAX_ITEMS + 1);
    d.n_total = shape[1] == 255 ? 0 : d.n_items + shape[1];
    d.generated_at = f[10] ? f[10] : empty;
    d.items = items;
    buf_init(&bb, MAX_BIG_BYTES);
    for (i = 0; i < reps && n_pool > 0 && pool[0] && *pool[0]; i++) {
        if (buf_append_str(&bb, pool[0]) != 0)
            break;
    }
    big = buf_take(&bb);
    for (i = 0; i < d.n_items; i++) {
        /* digest_item strings are never NULL (digest.h); the pool is never masked. */
        for (j = 0; j < 6; j++, next++)
            field[j] = n_pool ? pool[next % n_pool] : empty;
        items[i] = (struct digest_item){field[0], field[1], field[2], field[3], field[4], field[5]};
        if (*big && (shape[4] >> (i % 8) & 1))
            items[i].summary = big;
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
    in.digest = &d;
    ra = card_render_result_json(&to, &in, &a, &la, &sa);
    rb = card_render_result(&to, &in, &b, &lb, &sb);
    if (ra == 0 && rb == 0 && sa != sb)
        differ("result (shown)", (int)sa, la, a, (int)sb, lb, b);
    compare("result", ra, a, la, rb, b, lb);
    xfree(big);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *f[N_STRINGS];
    struct card_address to;
    unsigned nulls, kind;
    size_t skip, n_f, i;
    char *copy, *p, *end, *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    int ra, rb;

    if (size < 3)
        return 0;
    kind = data[0] % 5u;
    skip = kind == 3 ? 8 : 3;
    if (size < skip)
        return 0;
    nulls = (unsigned)data[1] | (unsigned)data[2] << 8;
    /* One NUL more at the end, so the last string is terminated too. */
    copy = xmalloc(size - skip + 1);
    memcpy(copy, data + skip, size - skip);
    copy[size - skip] = '\0';
    p = copy;
    end = copy + (size - skip);
    for (n_f = 0; n_f < N_STRINGS && p <= end; n_f++) {
        f[n_f] = p;
        p += strlen(p) + 1;
    }
    for (i = n_f; i < N_STRINGS; i++)
        f[i] = empty;
    /* The mask covers the address and the card's own strings, never the pool. */
    for (i = 0; i < 11; i++) {
        if (nulls & (1u << i))
            f[i] = NULL;
    }
    if (kind == 3) {
        fuzz_result(data + 3, f, n_f < 11 ? 11 : n_f);
        xfree(copy);
        return 0;
    }
    memset(&to, 0, sizeof(to));
    to.bot_id = f[0];
    to.bot_name = f[1];
    to.user_id = f[2];
    to.user_name = f[3];
    to.conversation_id = f[4];
    to.reply_to_id = f[5];
    to.activity_id = f[6];
    if (kind == 4) {
        struct card_error_info e = {f[7], f[8], f[9], f[10]};

        ra = card_render(&to, card_error(&e), &a, &la);
        rb = card_render_error(&to, &e, &b, &lb);
        compare("error", ra, a, la, rb, b, lb);
    } else {
        struct card_ack_info in = {f[7], f[8], f[9], (enum card_ack_state)kind};

        ra = card_render(&to, card_ack(&in), &a, &la);
        rb = card_render_ack(&to, &in, &b, &lb);
        compare("ack", ra, a, la, rb, b, lb);
    }
    xfree(copy);
    return 0;
}
