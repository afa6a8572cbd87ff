/*
 * activity_build.c: Teams message activities shaped like the research
 * fixtures, built with json-c so every string is escaped once, in one place.
 */
#include "teams/activity_build.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "core/json_write.h"

static void jadd_str(struct json_object *o, const char *key, const char *val)
{
    json_object_object_add(o, key, json_object_new_string(val));
}

int conv_kind_parse(const char *s, enum conv_kind *out)
{
    static const char *const names[] = {"personal", "channel", "group"};
    size_t i;

    for (i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum conv_kind)i;
            return 0;
        }
    }
    return DG_ERR_INVALID;
}

/* Who talks, where: the identities of the research fixtures (§1.2). */
struct conv_profile {
    const char *user_id, *user_name, *aad_id;
    const char *conv_type, *conv_id, *tenant_id;
    const char *team_id; /* channel only */
    bool mention;
};

static const struct conv_profile profiles[] = {
    [CONV_PERSONAL] =
        {"29:1XJKJMvc5GBtc2JwZq0oj8tHZmzrQgFmB39ATiQWA85gQtHieVkKilBZ9XHoq9j7Zaqt7CZ-"
         "NJWi7me2kHTL3Bw",
         "Megan Bowen", "7faf8ab2-3d56-4244-b585-20c8a42ed2b8", "personal",
         "a:17I0kl9EkpE1O9PH5TWrzrLNwnWWcfrU7QZjKR0WSfOpzbfcAg2IaydGElSo10tVr4C7Fc6GtieTJX663WuJCc"
         "1uA83n4CSrHSgGBj5XNYLcVlJAs2ZX8DbYBPck201w-",
         "72f988bf-86f1-41af-91ab-2d7cd011db47", NULL, false},
    [CONV_CHANNEL] = {"29:17bUvCasIPKfQIXHvNzcPjD86fwm6GkWc1PvCGP2-NSkNb7AyGYpjQ7Xw-"
                      "XgTwaHW5JxZ4KMNDxn1kcL8fwX1Nw",
                      "rido", "b15a9416-0ad3-4172-9210-7beb711d3f70", "channel",
                      "19:6848757105754c8981c67612732d9aa7@thread.tacv2;messageid=1759881511856",
                      "50612dbb-0237-4969-b378-8d42590f9c00",
                      "19:66P469zibfbsGI-_a0aN_toLTZpyzS6u7CT3TsXdgPw1@thread.tacv2", true},
    [CONV_GROUP] = {"29:1GcS4EyB_oSI8A88XmWBN7NJFyMqe3QGnJdgLfFGkJnVelzRGos0bfOlb6yOHNGtuQUT1Bg",
                    "User One", "4a7e2c1b-93d5-4f0e-8b6a-2d9c5e1f7a30", "groupChat",
                    "19:9d2f6a0c4b7e41d8a3c5e7f9b1d2c4e6@thread.v2",
                    "8c0f3a1e-5b2d-4e6f-9a7c-1d3b5e7f9a2c", NULL, true},
};

void activity_default_identity(enum conv_kind kind, struct activity_identity *out)
{
    out->user_id = profiles[kind].user_id;
    out->aad_object_id = profiles[kind].aad_id;
    out->conversation_id = profiles[kind].conv_id;
}

/* Escapes text for the text/html attachment Teams adds beside the message. */
static int append_html_escaped(struct buf *b, const char *s)
{
    int err = 0;

    for (; *s && !err; s++) {
        if (*s == '<')
            err = buf_append_str(b, "&lt;");
        else if (*s == '>')
            err = buf_append_str(b, "&gt;");
        else if (*s == '&')
            err = buf_append_str(b, "&amp;");
        else
            err = buf_append(b, s, 1);
    }
    return err;
}

/* A ChannelAccount {"id","name"[,"aadObjectId"]}. */
static struct json_object *account(const char *id, const char *name, const char *aad)
{
    struct json_object *a = json_object_new_object();

    jadd_str(a, "id", id);
    jadd_str(a, "name", name);
    if (aad)
        jadd_str(a, "aadObjectId", aad);
    return a;
}

/* isGroup only where Teams sends it: group chats and channels. */
static struct json_object *conversation(const struct conv_profile *p, const char *conv_id)
{
    struct json_object *c = json_object_new_object();

    if (p->mention)
        json_object_object_add(c, "isGroup", json_object_new_boolean(1));
    jadd_str(c, "conversationType", p->conv_type);
    jadd_str(c, "tenantId", p->tenant_id);
    jadd_str(c, "id", conv_id);
    return c;
}

/*
 * The bot's mention (channel and group chats: digestd strips it from the
 * text by this entity) and the clientInfo entity Teams always adds.
 */
static struct json_object *entities(const struct conv_profile *p, const char *bot_id)
{
    struct json_object *list = json_object_new_array(), *m, *who, *ci;

    if (p->mention) {
        m = json_object_new_object();
        who = json_object_new_object();
        jadd_str(who, "id", bot_id);
        jadd_str(who, "name", ACTIVITY_BOT_NAME);
        json_object_object_add(m, "mentioned", who);
        jadd_str(m, "text", "<at>" ACTIVITY_BOT_NAME "</at>");
        jadd_str(m, "type", "mention");
        json_object_array_add(list, m);
    }
    ci = json_object_new_object();
    jadd_str(ci, "locale", "en-US");
    jadd_str(ci, "country", "US");
    jadd_str(ci, "platform", "Web");
    jadd_str(ci, "timezone", "America/Los_Angeles");
    jadd_str(ci, "type", "clientInfo");
    json_object_array_add(list, ci);
    return list;
}

/* tenant everywhere; team and channel only in channel conversations (T-CONV). */
static struct json_object *channel_data(const struct conv_profile *p)
{
    struct json_object *cd = json_object_new_object(), *t = json_object_new_object();

    if (p->team_id) {
        /* The channel is the conversation id without its ;messageid= suffix. */
        const char *semi = strchr(p->conv_id, ';');
        struct json_object *ch = json_object_new_object(), *team = json_object_new_object();
        json_object_object_add(ch, "id",
                               json_object_new_string_len(p->conv_id, (int)(semi - p->conv_id)));
        json_object_object_add(cd, "channel", ch);
        jadd_str(team, "id", p->team_id);
        json_object_object_add(cd, "team", team);
    }
    jadd_str(t, "id", p->tenant_id);
    json_object_object_add(cd, "tenant", t);
    return cd;
}

/* The text/html rendering of a message with a mention, as Teams attaches it. */
static int html_attachment(const char *text, struct json_object **out)
{
    struct json_object *list, *a;
    struct buf html;
    int err;

    buf_init(&html, 64 * 1024);
    err = buf_append_str(&html, "<p><span itemtype=\"http://schema.skype.com/Mention\" "
                                "itemscope=\"\" itemid=\"0\">" ACTIVITY_BOT_NAME "</span>&nbsp;");
    if (!err)
        err = append_html_escaped(&html, text);
    if (!err)
        err = buf_append_str(&html, "</p>");
    if (!err) {
        list = json_object_new_array();
        a = json_object_new_object();
        jadd_str(a, "contentType", "text/html");
        jadd_str(a, "content", buf_cstr(&html));
        json_object_array_add(list, a);
        *out = list;
    }
    buf_free(&html);
    return err;
}

int activity_build_json(const struct activity_spec *spec, struct buf *out)
{
    const struct conv_profile *p = &profiles[spec->kind];
    const char *conv_id =
        spec->conversation_id && *spec->conversation_id ? spec->conversation_id : p->conv_id;
    struct json_object *a = json_object_new_object(), *att = NULL;
    struct buf s;
    char bot_id[256];
    int err = 0;

    buf_init(&s, 64 * 1024);
    snprintf(bot_id, sizeof(bot_id), "28:%s", spec->app_id);
    jadd_str(a, "type", "message");
    jadd_str(a, "id", spec->id);
    jadd_str(a, "timestamp", spec->timestamp);
    jadd_str(a, "serviceUrl", spec->service_url);
    jadd_str(a, "channelId", "msteams");
    json_object_object_add(a, "from",
                           account(spec->user_id ? spec->user_id : p->user_id, p->user_name,
                                   spec->aad_object_id ? spec->aad_object_id : p->aad_id));
    json_object_object_add(a, "conversation", conversation(p, conv_id));
    json_object_object_add(a, "recipient", account(bot_id, ACTIVITY_BOT_NAME, NULL));
    jadd_str(a, "textFormat", "plain");
    if (p->mention) {
        /* Group chats end the text with a newline, as fixture (c) shows. */
        err = buf_printf(&s, "<at>%s</at> %s%s", ACTIVITY_BOT_NAME, spec->text,
                         spec->kind == CONV_GROUP ? "\n" : "");
        if (!err)
            err = html_attachment(spec->text, &att);
        if (!err)
            json_object_object_add(a, "attachments", att);
    }
    jadd_str(a, "text", p->mention ? buf_cstr(&s) : spec->text);
    json_object_object_add(a, "entities", entities(p, bot_id));
    json_object_object_add(a, "channelData", channel_data(p));
    jadd_str(a, "locale", "en-US");
    if (!err)
        err = json_write_append(out, a); /* compact, as Teams sends it */
    json_object_put(a);
    buf_free(&s);
    return err;
}
