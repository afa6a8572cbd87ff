/*
 * watch.c: stats redrawn in place every second (SPEC §7) with plain ANSI:
 * the alternate screen, cursor home, clear, the frame, then wait up to a
 * second for a key. q (or Ctrl-C, or SIGTERM) quits and restores the
 * terminal: its mode, the cursor and the screen under it. Each frame is
 * rendered into memory first and written whole, so it never flickers
 * half-drawn. A Redis that goes away is shown, and reconnected to, rather
 * than ending the watch. With --json it prints one snapshot per line.
 */
#include "ctl.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "core/clock.h"
#include "store/cmd.h"
#include "store/inspect.h"
#include "table.h"

#define WATCH_PERIOD_MS 1000
#define SCREEN_ENTER "\033[?1049h\033[?25l" /* alternate screen, cursor hidden */
#define SCREEN_LEAVE "\033[?25h\033[?1049l"
#define FRAME_START "\033[H\033[2J" /* home, clear */

static volatile sig_atomic_t quit_signal;
static struct termios saved_tty;
static bool tty_raw;

static void on_quit_signal(int sig)
{
    quit_signal = sig;
}

/* Keys without Enter and without echo, while the watch runs. */
static void tty_enter(bool screen)
{
    struct termios raw;

    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tty) == 0) {
        raw = saved_tty;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        tty_raw = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    if (screen)
        fputs(SCREEN_ENTER, stdout);
}

static void tty_leave(bool screen)
{
    if (tty_raw)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
    tty_raw = false;
    if (screen)
        fputs(SCREEN_LEAVE, stdout);
    fflush(stdout);
}

/* Waits up to ms for input; true when it was q (or the input ended, or a signal said quit). */
static bool wait_quit(int ms)
{
    struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
    char c[16];
    ssize_t n;

    if (quit_signal)
        return true;
    if (poll(&p, 1, ms) <= 0)
        return quit_signal != 0;
    n = read(STDIN_FILENO, c, sizeof(c));
    if (n == 0 && !isatty(STDIN_FILENO))
        return false; /* stdin closed (a pipe): keep watching until a signal */
    for (ssize_t i = 0; i < n; i++)
        if (c[i] == 'q' || c[i] == 'Q' || c[i] == 3 /* Ctrl-C in raw mode */)
            return true;
    return quit_signal != 0;
}

/* One frame: a snapshot rendered into memory, or why there is none. */
static void frame(struct ctl *ctl, char **text, size_t *len)
{
    FILE *real = ctl->out;
    struct json_object *o = NULL;
    struct store_cmd c;
    char when[40];

    ctl->out = open_memstream(text, len);
    if (!ctl->out)
        abort();
    if (!ctl->rc && ctl_connect(ctl) != CTL_OK) {
        fprintf(ctl->out, "Redis at %s is unreachable; trying again every second\n", ctl->where);
    } else {
        inspect_queue_cmd(&c, ctl->cfg.prefix, ctl->cfg.worker_claim_idle_ms);
        if (ctl_query(ctl, &c, inspect_queue_decode, &o) != CTL_OK) {
            fprintf(ctl->out, "lost Redis at %s; reconnecting\n", ctl->where);
            ctl_disconnect(ctl);
        } else if (ctl->opts.json) {
            ctl_print_json(ctl, o);
            o = NULL;
        } else {
            ctl_stats_print(ctl, o);
        }
    }
    if (!ctl->opts.json)
        fprintf(ctl->out, "\n%s  every %ds; q quits\n",
                fmt_time((int64_t)clock_wall_ms(), when, sizeof(when)), WATCH_PERIOD_MS / 1000);
    json_object_put(o);
    fclose(ctl->out);
    ctl->out = real;
}

int ctl_watch(struct ctl *ctl)
{
    bool screen = !ctl->opts.json;
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_quit_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    tty_enter(screen);
    ctl_quiet(true); /* what goes wrong is shown in the frame, not over it */
    do {
        char *text = NULL;
        size_t len = 0;

        frame(ctl, &text, &len);
        if (screen)
            fputs(FRAME_START, stdout);
        fwrite(text, 1, len, stdout);
        fflush(stdout);
        xfree(text); /* open_memstream's buffer: malloc'd by libc, and xfree is free */
    } while (!wait_quit(WATCH_PERIOD_MS));
    tty_leave(screen);
    ctl_quiet(false);
    return CTL_OK;
}
