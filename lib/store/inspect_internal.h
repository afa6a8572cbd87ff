/*
 * inspect_internal.h: what inspect.c (one request, requeues) and
 * inspect_queue.c (the queue-wide views) share: reading replies into JSON,
 * starting a script command, sending one with its decoder. Private to
 * lib/store/.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "store/inspect.h"

struct store_script;

/* A string or status reply (never NULL). */
bool inspect_is_str(const struct redisReply *r);
/* A reply that is there and no error: 0, else the decoders' error. */
int inspect_reply_usable(const struct redisReply *r);
/* One Redis value as JSON: numbers stay numbers, nil (and anything else) is null. */
struct json_object *inspect_value_json(const struct redisReply *r);
/* A flat [field, value, …] array as an object; '-' in names becomes '_'. */
struct json_object *inspect_pairs_json(const struct redisReply *flat);
/* The value of name in a flat [field, value, …] array, or NULL. */
const struct redisReply *inspect_pair(const struct redisReply *flat, const char *name);
/* An integer reply, or a string holding a number; dflt otherwise (NULL included). */
int64_t inspect_int(const struct redisReply *r, int64_t dflt);
/* The ms part of a stream id "ms-seq" (0 when it is not one). */
int64_t inspect_id_ms(const char *id);
/* A stream entry [id, [field, value, …]] as {"id", fields…}; null when it is not one. */
struct json_object *inspect_entry_json(const struct redisReply *e);
/* A live process {name, [field, value, …]} as inspect_procs lists it. */
struct json_object *inspect_proc_json(const struct redisReply *p, int64_t now_ms);
/* name is one of the processes of a live_procs list. */
bool inspect_proc_alive(const struct redisReply *procs, const char *name);

/* "EVAL" <script> <numkeys>: the start of every script command here. */
void inspect_eval_start(struct store_cmd *c, const struct store_script *s, int numkeys);
/* Sends c (freed here, sent or not) with decode for its reply; cb gets the JSON. */
int inspect_send_json(struct redis_conn *conn, struct store_cmd *c,
                      int (*decode)(const struct redisReply *, struct json_object **),
                      inspect_json_cb cb, void *data) WARN_UNUSED;
