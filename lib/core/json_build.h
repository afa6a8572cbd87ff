/*
 * json_build.h: the one way digestd writes JSON (cards, admin answers,
 * digestctl --json): json-c objects through builders that never return
 * NULL. json-c answers NULL when it cannot allocate and
 * json_object_object_add takes its value only on success (STYLE rule 10);
 * like xmalloc, these abort instead, so a builder reads as the document it
 * makes and never sends half of one. The short j- names are this module's
 * prefix: builders are called dozens of times in a row.
 *
 * Ownership: j* constructors return owned objects (json_object_put);
 * jset and jpush take val (NULL stands for JSON null). The text is written
 * by core/json_write.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

struct json_object *jobj(void);
struct json_object *jarr(void);
/* A string; NULL is taken as "". */
struct json_object *jstr(const char *s);
/* len bytes of s (binary-safe: Redis values may hold anything). */
struct json_object *jstr_len(const char *s, size_t len);
struct json_object *jint64(int64_t v);
struct json_object *jbool(bool v);

/* obj[key] = val, taking val. */
void jset(struct json_object *obj, const char *key, struct json_object *val);
void jset_str(struct json_object *obj, const char *key, const char *s);
/* Appends val to arr, taking val. */
void jpush(struct json_object *arr, struct json_object *val);
