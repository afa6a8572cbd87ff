/* table.c: aligned tables and readable numbers (see table.h). */
#include "table.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/clock.h"

#define TABLE_GAP 2 /* spaces between columns */
#define TABLE_MIN_FLEX 8

struct table {
    int ncols;
    const char *headers[TABLE_MAX_COLS]; /* borrowed: static strings */
    char **cells;                        /* rows × ncols, owned */
    size_t rows;
};

struct table *table_new(int ncols, const char *const *headers)
{
    struct table *t = xcalloc(1, sizeof(*t));

    t->ncols = ncols < TABLE_MAX_COLS ? ncols : TABLE_MAX_COLS;
    for (int i = 0; i < t->ncols; i++)
        t->headers[i] = headers[i];
    return t;
}

void table_row(struct table *t, const char *const *cells)
{
    t->cells = xrealloc(t->cells, (t->rows + 1) * (size_t)t->ncols * sizeof(*t->cells));
    for (int i = 0; i < t->ncols; i++)
        t->cells[t->rows * (size_t)t->ncols + (size_t)i] = xstrdup(cells[i] ? cells[i] : "-");
    t->rows++;
}

/* A header's text without its marker; whether it is right-aligned or the flexible one. */
static const char *header(const struct table *t, int i, bool *right, bool *flex)
{
    const char *h = t->headers[i];

    *right = h[0] == '>';
    *flex = h[0] == '~';
    return *right || *flex ? h + 1 : h;
}

static void print_cell(FILE *out, const char *s, int w, bool right, bool last)
{
    int len = (int)strlen(s);

    if (len > w) /* the flexible column, cut to fit: the end says so */
        fprintf(out, "%.*s..", w > 2 ? w - 2 : 0, s);
    else if (right)
        fprintf(out, "%*s", w, s);
    else if (last)
        fputs(s, out);
    else
        fprintf(out, "%-*s", w, s);
}

/* The widest column still above the minimum, -1 when none is. */
static int widest(const int *w, int n)
{
    int best = -1;

    for (int i = 0; i < n; i++)
        if (w[i] > TABLE_MIN_FLEX && (best < 0 || w[i] > w[best]))
            best = i;
    return best;
}

void table_print(const struct table *t, FILE *out, int indent, int width)
{
    int w[TABLE_MAX_COLS], total = indent, flex = -1;
    bool right, is_flex;

    for (int i = 0; i < t->ncols; i++) {
        w[i] = (int)strlen(header(t, i, &right, &is_flex));
        if (is_flex)
            flex = i;
        for (size_t r = 0; r < t->rows; r++) {
            int len = (int)strlen(t->cells[r * (size_t)t->ncols + (size_t)i]);
            w[i] = len > w[i] ? len : w[i];
        }
        total += w[i] + (i ? TABLE_GAP : 0);
    }
    /* Too wide: the flexible column gives first, then the widest ones, none below a minimum. */
    while (width > 0 && total > width) {
        int c = flex >= 0 && w[flex] > TABLE_MIN_FLEX ? flex : widest(w, t->ncols);
        int give = total - width < w[c] - TABLE_MIN_FLEX ? total - width : w[c] - TABLE_MIN_FLEX;

        if (c < 0 || give <= 0)
            break;
        w[c] -= give;
        total -= give;
    }
    for (long r = -1; r < (long)t->rows; r++) {
        fprintf(out, "%*s", indent, "");
        for (int i = 0; i < t->ncols; i++) {
            const char *h = header(t, i, &right, &is_flex);
            const char *s = r < 0 ? h : t->cells[(size_t)r * (size_t)t->ncols + (size_t)i];

            if (i)
                fprintf(out, "%*s", TABLE_GAP, "");
            print_cell(out, s, w[i], right, i == t->ncols - 1);
        }
        fputc('\n', out);
    }
}

void table_free(struct table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->rows * (size_t)t->ncols; i++)
        xfree(t->cells[i]);
    xfree(t->cells);
    xfree(t);
}

const char *fmt_cut(const char *s, size_t max, char *out, size_t size)
{
    size_t len = strlen(s);

    if (len <= max || max < 3)
        snprintf(out, size, "%s", s);
    else
        snprintf(out, size, "%.*s..", (int)(max - 2), s);
    return out;
}

const char *fmt_span(int64_t ms, char *out, size_t size)
{
    if (ms < 0)
        snprintf(out, size, "-");
    else
        clock_format_span((uint64_t)ms, out, size);
    return out;
}

const char *fmt_bytes(int64_t n, char *out, size_t size)
{
    static const char *const units[] = {"KB", "MB", "GB", "TB"};
    double v = (double)n;
    size_t u = 0;

    if (n < 0) {
        snprintf(out, size, "-");
        return out;
    }
    if (n < 1024) {
        snprintf(out, size, "%" PRId64 "B", n);
        return out;
    }
    for (v /= 1024; v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0]); u++)
        v /= 1024;
    snprintf(out, size, "%.1f%s", v, units[u]);
    return out;
}

const char *fmt_time(int64_t ms, char *out, size_t size)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || !gmtime_r(&s, &tm)) {
        snprintf(out, size, "-");
        return out;
    }
    snprintf(out, size, "%04d-%02d-%02d %02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return out;
}

const char *fmt_int(int64_t n, char *out, size_t size)
{
    if (n < 0)
        snprintf(out, size, "-");
    else
        snprintf(out, size, "%" PRId64, n);
    return out;
}
