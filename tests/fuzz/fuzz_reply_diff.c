/*
 * fuzz_reply_diff.c: differential libFuzzer target for the connector's
 * ResourceResponse read (connector_resource_id, lib/teams/connector.c on
 * lib/core/json_scan.c) against what it replaced, json-c through
 * json_strict_object (JSON_MAX_DEPTH in json-c's count, UTF-8 unchecked)
 * and json_strict_string's lookup of "id", kept below as the reference and
 * used nowhere else. The id is all a caller sees, so it aborts unless:
 *
 * - the scanner never finds an id where json-c found none;
 * - where json-c found one and the scanner none, the RFC 8259 checker
 *   (rfc8259.h, UTF-8 unchecked) finds one of json_scan.h's documented
 *   refusals first: a single-quoted string, a number RFC 8259 does not
 *   allow, a raw control character in a string;
 * - otherwise both ids are the same bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/common.h"
#include "core/json_strict.h"
#include "config.h"
#include "rfc8259.h"
#include "teams/connector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* The reference: connector.c's resource_id before the scanner. */
static char *ref_resource_id(const char *body, size_t len)
{
    struct json_object *root;
    const char *s;
    char *id = NULL;

    if (json_strict_object(body, len, JSON_MAX_DEPTH, false, &root) != 0)
        return NULL;
    s = json_strict_string(root, "id");
    if (s)
        id = xstrdup(s);
    json_object_put(root);
    return id;
}

static bool documented(enum rfc_class cls)
{
    return cls == RFC_SQUOTE || cls == RFC_NUMBER || cls == RFC_CONTROL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *ref = ref_resource_id((const char *)data, size);
    char *got = connector_resource_id((const char *)data, size);

    if (!ref)
        check(got == NULL);
    else if (!got)
        check(documented(rfc8259_check(data, size, false, 0).cls));
    else
        check(strcmp(ref, got) == 0);
    xfree(ref);
    xfree(got);
    return 0;
}
