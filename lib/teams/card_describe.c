/*
 * card_describe.c: reads back what a bot activity carries, by the headings
 * and facts that teams/card.c writes.
 */
#include "teams/card_describe.h"

#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "core/common.h"

/* A string member of o, or NULL when absent or not a string. */
static const char *str_member(struct json_object *o, const char *key)
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static void set_field(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

/* Kind from the card's first top-level TextBlock (src/card.c's headings). */
static const char *kind_from_heading(struct json_object *block)
{
    static const struct {
        const char *heading, *kind;
    } map[] = {
        {"Digest requested", "ack"},     {"Digest delivered", "ack-delivered"},
        {"Digest failed", "ack-failed"}, {"Candidate digest: commands", "help"},
        {"Candidate digest", "result"},  {"Digest request status", "status"},
    };
    const char *text = str_member(block, "text"), *color = str_member(block, "color");
    size_t i;

    for (i = 0; text && i < ARRAY_SIZE(map); i++) {
        if (strcmp(text, map[i].heading) == 0)
            return map[i].kind;
    }
    /* Error cards open with a heading in the Attention colour. */
    if (color && strcmp(color, "Attention") == 0)
        return "error";
    return "card";
}

/* The value of the "Request" fact in any top-level FactSet, or NULL. */
static const char *request_fact(struct json_object *body)
{
    size_t i, j, n = json_object_array_length(body);

    for (i = 0; i < n; i++) {
        struct json_object *el = json_object_array_get_idx(body, i), *facts;
        const char *type = str_member(el, "type");
        if (!type || strcmp(type, "FactSet") != 0 ||
            !json_object_object_get_ex(el, "facts", &facts) ||
            !json_object_is_type(facts, json_type_array))
            continue;
        for (j = 0; j < json_object_array_length(facts); j++) {
            struct json_object *f = json_object_array_get_idx(facts, j);
            const char *title = str_member(f, "title");
            if (title && strcmp(title, "Request") == 0)
                return str_member(f, "value");
        }
    }
    return NULL;
}

static void describe_card(struct json_object *card, struct card_summary *out)
{
    struct json_object *body;
    size_t i, n;

    set_field(out->kind, sizeof(out->kind), "card");
    if (!json_object_object_get_ex(card, "body", &body) ||
        !json_object_is_type(body, json_type_array))
        return;
    n = json_object_array_length(body);
    for (i = 0; i < n; i++) {
        struct json_object *el = json_object_array_get_idx(body, i);
        const char *type = str_member(el, "type");
        /* A test-mode banner is a Container before the heading: skip it. */
        if (type && strcmp(type, "TextBlock") == 0) {
            set_field(out->kind, sizeof(out->kind), kind_from_heading(el));
            break;
        }
    }
    set_field(out->request_id, sizeof(out->request_id), request_fact(body));
}

void card_describe(struct json_object *activity, struct card_summary *out)
{
    struct json_object *atts, *card;

    set_field(out->kind, sizeof(out->kind), "none");
    out->request_id[0] = '\0';
    if (!activity || !json_object_is_type(activity, json_type_object))
        return;
    if (json_object_object_get_ex(activity, "attachments", &atts) &&
        json_object_is_type(atts, json_type_array) && json_object_array_length(atts) > 0 &&
        json_object_object_get_ex(json_object_array_get_idx(atts, 0), "content", &card) &&
        json_object_is_type(card, json_type_object)) {
        describe_card(card, out);
        return;
    }
    if (str_member(activity, "text"))
        set_field(out->kind, sizeof(out->kind), "text");
}
