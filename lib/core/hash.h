/*
 * hash.h: FNV-1a, the one string hash of digestd (the connector's
 * conversation map, the worker's stream-id index, the queue's "certainly a
 * different conversation" test, the stub's per-audience seed). Fast and
 * well spread for short keys. Not keyed: whoever may choose many keys can
 * make them collide, so it suits ids that Teams, Redis or digestd hand
 * out, not names an attacker makes up. Pure.
 */
#pragma once

#include <stdint.h>

/* The 64-bit FNV-1a hash of the NUL-terminated string s. */
uint64_t hash_fnv1a(const char *s);
