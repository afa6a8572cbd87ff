/* cmd.c: a command argv with the strings it owns (see cmd.h). */
#include "store/cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

void store_cmd_init(struct store_cmd *c)
{
    memset(c, 0, sizeof(*c));
}

void store_cmd_arg_len(struct store_cmd *c, const char *s, size_t len)
{
    /* Every builder has a fixed argument count well under the cap. */
    if (c->argc == STORE_CMD_MAX_ARGS)
        abort();
    c->argv[c->argc] = s;
    c->argvlen[c->argc] = len;
    c->argc++;
}

void store_cmd_arg(struct store_cmd *c, const char *s)
{
    store_cmd_arg_len(c, s, strlen(s));
}

void store_cmd_take(struct store_cmd *c, char *s)
{
    if (c->n_owned == STORE_CMD_MAX_OWNED)
        abort();
    c->owned[c->n_owned++] = s;
    store_cmd_arg(c, s);
}

void store_cmd_arg_u64(struct store_cmd *c, uint64_t v)
{
    if (c->n_nums == STORE_CMD_MAX_NUMS)
        abort();
    snprintf(c->nums[c->n_nums], sizeof(c->nums[0]), "%" PRIu64, v);
    store_cmd_arg(c, c->nums[c->n_nums++]);
}

void store_cmd_free(struct store_cmd *c)
{
    for (int i = 0; i < c->n_owned; i++)
        xfree(c->owned[i]);
    store_cmd_init(c);
}
