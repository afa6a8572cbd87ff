/* common.c: error names. */
#include "core/common.h"

#include <uv.h>

const char *dg_strerror(int err)
{
    switch (err) {
    case DG_OK:
        return "ok";
    case DG_ERR_TOO_LARGE:
        return "too large";
    case DG_ERR_BAD_JSON:
        return "malformed JSON";
    case DG_ERR_FIELD:
        return "missing or invalid field";
    case DG_ERR_CONFIG:
        return "invalid configuration";
    case DG_ERR_UNAVAILABLE:
        return "unavailable";
    case DG_ERR_TIMEOUT:
        return "timed out";
    case DG_ERR_PROTOCOL:
        return "protocol error";
    case DG_ERR_CLOSED:
        return "closed";
    case DG_ERR_INVALID:
        return "invalid argument";
    default:
        return err < 0 && err > -4096 ? uv_strerror(err) : "unknown error";
    }
}
