/*
 * main.c: the digest-stub entry point (SPEC §9). `serve` (the
 * default) lives in stub_serve.c; this file has the two client commands:
 *
 *   digest-stub say "TEXT" [--to URL] [--conversation personal|channel|group] …
 *     POSTs a Teams message activity, signed like Bot Framework's (RS256 JWT
 *     with the development key, kid = RFC 7638 thumbprint; iss
 *     https://api.botframework.com, aud = app id, serviceurl = the activity's
 *     serviceUrl, nbf = iat = now-5 s, exp = now+1 h), through http_client on
 *     a loop. stdout: "HTTP <status>", then the response body on one line
 *     when there is one. Exit 0 on 2xx, 1 otherwise (transport errors on
 *     stderr), 2 for bad options.
 *   digest-stub token [--service-url URL] [--ttl DURATION] [forging options]
 *     prints one such JWT and a newline, for tests that send their own
 *     activities (e.g. the research fixtures). --aud, --iss, --kid,
 *     --exp-offset, --nbf-offset, --alg, --no-serviceurl and --bad-signature
 *     forge every bad token issue 5 lists, and --claim NAME=JSON any claim
 *     shape at all (see --help).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include <json-c/json.h>
#include <openssl/pem.h>

#include "core/buf.h"
#include "core/json_write.h"
#include "core/clock.h"
#include "http/http_client.h"
#include "teams/jwt_sign.h"
#include "core/log.h"
#include "content.h"
#include "teams/devkey.h"
#include "options.h"
#include "serve.h"

#define TOKEN_MAX_BYTES 8192
#define ACTIVITY_MAX_BYTES (256u * 1024)
#define RESPONSE_MAX_BYTES (1u << 20)
/* Applies o's --claim NAME=JSON options to c (checked as JSON when parsed). */
static void add_raw_claims(const struct stub_opts *o, struct json_object *c)
{
    size_t i;

    for (i = 0; i < o->n_claims; i++) {
        const char *eq = strchr(o->claims[i], '=');
        char *name = xstrndup(o->claims[i], (size_t)(eq - o->claims[i]));

        /* json-c keeps a number's spelling, so 1e400 goes out as 1e400. */
        json_object_object_add(c, name, json_tokener_parse(eq + 1));
        xfree(name);
    }
}

/* The claims of o's token as JSON text (owned, xfree); exp = now + ttl unless overridden. */
static char *token_claims(const struct stub_opts *o, uint64_t ttl_ms)
{
    struct json_object *c = json_object_new_object();
    int64_t now = (int64_t)(clock_wall_ms() / 1000);
    int64_t exp = o->has_exp_offset ? now + o->exp_offset_s : now + (int64_t)(ttl_ms / 1000);
    char *text;

    json_object_object_add(c, "iss", json_object_new_string(o->tok_iss));
    json_object_object_add(c, "aud", json_object_new_string(o->tok_aud ? o->tok_aud : o->app_id));
    if (!o->no_serviceurl)
        json_object_object_add(c, "serviceurl", json_object_new_string(o->service_url));
    /* Bot Framework issues tokens a little in the past (nbf-offset -5) to absorb clock skew. */
    json_object_object_add(c, "nbf", json_object_new_int64(now + o->nbf_offset_s));
    json_object_object_add(c, "iat", json_object_new_int64(now + o->nbf_offset_s));
    json_object_object_add(c, "exp", json_object_new_int64(exp));
    add_raw_claims(o, c);
    text = xstrdup(json_write_compact(c, NULL));
    json_object_put(c);
    return text;
}

/* The JOSE header naming o's alg and kid (owned, xfree). */
static char *token_header(const struct stub_opts *o, const char *kid)
{
    static const char *const names[] = {"RS256", "RS384", "RS512", "HS256", "none"};
    struct json_object *h = json_object_new_object();
    char *text;

    json_object_object_add(h, "alg", json_object_new_string(names[o->tok_alg]));
    json_object_object_add(h, "typ", json_object_new_string("JWT"));
    json_object_object_add(h, "kid", json_object_new_string(o->tok_kid ? o->tok_kid : kid));
    text = xstrdup(json_write_compact(h, NULL));
    json_object_put(h);
    return text;
}

/* The public key's PEM, the HMAC secret of the HS256 confusion attack, into pem. */
static int public_pem(EVP_PKEY *key, struct buf *pem)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long len;
    int err = DG_ERR_INVALID;

    if (bio && PEM_write_bio_PUBKEY(bio, key) == 1) {
        len = BIO_get_mem_data(bio, &data);
        err = len > 0 ? buf_append(pem, data, (size_t)len) : DG_ERR_INVALID;
    }
    BIO_free(bio);
    return err;
}

/* Changes one character in the middle of the signature part; tokens then fail to verify. */
static void spoil_signature(struct buf *out, size_t start)
{
    const char *dot = strrchr(out->data + start, '.');
    size_t sig = dot ? (size_t)(dot + 1 - out->data) : out->len;
    size_t at = sig + (out->len - sig) / 2;

    /* "none" has no signature to spoil; the middle character carries no padding bits. */
    if (at < out->len)
        out->data[at] = out->data[at] == 'A' ? 'B' : 'A';
}

/*
 * Appends a token for o's app id and service URL, valid for ttl_ms; the
 * token options of o (aud, iss, kid, alg, offsets, flags) forge the shapes
 * the auth tests need. Defaults give what `say` has always sent.
 */
static int sign_token(const struct stub_opts *o, EVP_PKEY *key, const char *kid, uint64_t ttl_ms,
                      struct buf *out)
{
    static const enum jwt_sig how[] = {JWT_SIG_RS256, JWT_SIG_RS384, JWT_SIG_RS512, JWT_SIG_HS256,
                                       JWT_SIG_NONE};
    char *header = token_header(o, kid), *claims = token_claims(o, ttl_ms);
    size_t start = out->len;
    struct buf pem;
    int err = 0;

    buf_init(&pem, 4 * TOKEN_MAX_BYTES);
    if (o->tok_alg == STUB_ALG_HS256)
        err = public_pem(key, &pem);
    if (!err)
        err = jwt_sign_compact(how[o->tok_alg], key, pem.data, pem.len, header, claims,
                               strlen(claims), out);
    if (!err && o->bad_signature)
        spoil_signature(out, start);
    buf_free(&pem);
    xfree(header);
    xfree(claims);
    return err;
}

/* Loads the key and signs; the token is left in out. Errors are printed. */
static int load_and_sign(const struct stub_opts *o, uint64_t ttl_ms, struct buf *out)
{
    char kid[JWT_KID_LEN + 1];
    EVP_PKEY *key = NULL;
    int err = stub_key_load(o->key_dir, &key, kid);

    if (!err)
        err = sign_token(o, key, kid, ttl_ms, out);
    if (err)
        fprintf(stderr, "digest-stub: cannot sign a token with the key in %s: %s\n", o->key_dir,
                dg_strerror(err));
    EVP_PKEY_free(key);
    return err;
}

static int cmd_token(const struct stub_opts *o)
{
    struct buf tok;
    int rc = 1;

    buf_init(&tok, TOKEN_MAX_BYTES);
    if (load_and_sign(o, o->ttl_ms, &tok) == 0) {
        printf("%s\n", buf_cstr(&tok));
        rc = 0;
    }
    buf_free(&tok);
    return rc;
}

struct say {
    struct http_client *client;
    int rc;
};

static void on_said(const struct http_client_response *res, void *data)
{
    struct say *say = data;

    if (res->err) {
        fprintf(stderr, "digest-stub say: %s: %s\n", dg_strerror(res->err), res->error);
        say->rc = 1;
    } else {
        printf("HTTP %ld\n", res->status);
        if (res->body && res->body->len)
            printf("%s\n", buf_cstr(res->body));
        say->rc = res->status >= 200 && res->status < 300 ? 0 : 1;
    }
    http_client_stop(say->client, NULL, NULL);
}

/* Builds the activity for o; a fresh Teams-like numeric id unless one is given. */
static int build_activity(const struct stub_opts *o, struct buf *out, char *id, size_t id_size)
{
    uint64_t ms = clock_wall_ms();
    time_t secs = (time_t)(ms / 1000);
    char stamp[40], date[32];
    struct tm tm;
    struct activity_spec spec = {
        .kind = o->conversation,
        .text = o->text,
        .id = id,
        .timestamp = stamp,
        .service_url = o->service_url,
        .app_id = o->app_id,
        .conversation_id = o->conversation_id,
    };

    /* Teams ids are the send time in ms; three more digits keep two sends apart. */
    if (o->activity_id)
        snprintf(id, id_size, "%s", o->activity_id);
    else
        snprintf(id, id_size, "%llu%03llu", (unsigned long long)ms,
                 (unsigned long long)(clock_mono_ns() / 1000 % 1000));
    gmtime_r(&secs, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp, sizeof(stamp), "%s.%03uZ", date, (unsigned)(ms % 1000));
    return activity_build_json(&spec, out);
}

/* Sends the request on a private loop and returns the exit code. */
static int send_activity(const struct stub_opts *o, const struct buf *activity,
                         const char *auth_header)
{
    const char *headers[] = {"Content-Type: application/json", auth_header};
    struct http_client_request req = {
        .method = "POST",
        .url = o->to,
        .headers = headers,
        .n_headers = 2,
        .body = activity->data,
        .body_len = activity->len,
        .timeout_ms = o->timeout_ms,
        .max_response_bytes = RESPONSE_MAX_BYTES,
    };
    struct say say = {.rc = 1};
    uv_loop_t loop;
    int err;

    uv_loop_init(&loop);
    say.client = http_client_create(&loop, NULL);
    if (!say.client) {
        uv_loop_close(&loop);
        return 1;
    }
    err = http_client_send(say.client, &req, on_said, &say, NULL);
    if (err) {
        fprintf(stderr, "digest-stub say: cannot send to %s: %s\n", o->to, dg_strerror(err));
        http_client_stop(say.client, NULL, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    http_client_free(say.client);
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "digest-stub say: loop did not close cleanly\n");
        say.rc = 1;
    }
    return say.rc;
}

static int cmd_say(const struct stub_opts *o)
{
    struct buf activity, auth;
    char id[64];
    int rc = 1;

    buf_init(&activity, ACTIVITY_MAX_BYTES);
    buf_init(&auth, TOKEN_MAX_BYTES + 64);
    if (build_activity(o, &activity, id, sizeof(id)) != 0) {
        fprintf(stderr, "digest-stub say: activity too large\n");
        goto out;
    }
    if (buf_append_str(&auth, "Authorization: Bearer ") != 0 ||
        load_and_sign(o, 3600 * 1000, &auth) != 0)
        goto out;
    fprintf(stderr, "digest-stub say: POST %s activity %s (%s chat, serviceUrl %s)\n", o->to, id,
            o->conversation == CONV_PERSONAL  ? "personal"
            : o->conversation == CONV_CHANNEL ? "channel"
                                              : "group",
            o->service_url);
    rc = send_activity(o, &activity, buf_cstr(&auth));
out:
    buf_free(&activity);
    buf_free(&auth);
    return rc;
}

int main(int argc, char **argv)
{
    struct stub_opts o;

    /* Tests read stdout through a pipe: a line must arrive when printed. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    stub_opts_parse(argc, argv, &o);
    log_setup(LOG_LEVEL_INFO, false);
    switch (o.cmd) {
    case STUB_CMD_SAY:
        return cmd_say(&o);
    case STUB_CMD_TOKEN:
        return cmd_token(&o);
    case STUB_CMD_SERVE:
    default:
        return stub_serve_run(&o);
    }
}
