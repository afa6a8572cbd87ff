/* request_status.c: status names (see request_status.h). */
#include "store/request_status.h"

#include <string.h>

static const char *const names[REQUEST_STATUS_COUNT] = {
    [REQUEST_STATUS_QUEUED] = REQUEST_STATUS_NAME_QUEUED,
    [REQUEST_STATUS_PROCESSING] = REQUEST_STATUS_NAME_PROCESSING,
    [REQUEST_STATUS_DELIVERED] = REQUEST_STATUS_NAME_DELIVERED,
    [REQUEST_STATUS_FAILED] = REQUEST_STATUS_NAME_FAILED,
    [REQUEST_STATUS_DEAD] = REQUEST_STATUS_NAME_DEAD,
};

const char *request_status_name(enum request_status s)
{
    return (unsigned)s < REQUEST_STATUS_COUNT ? names[s] : "";
}

int request_status_parse(const char *name, enum request_status *out)
{
    for (unsigned i = 0; name && i < REQUEST_STATUS_COUNT; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (enum request_status)i;
            return 0;
        }
    }
    return DG_ERR_INVALID;
}

bool request_status_ended(enum request_status s)
{
    return s == REQUEST_STATUS_DELIVERED || s == REQUEST_STATUS_FAILED || s == REQUEST_STATUS_DEAD;
}
