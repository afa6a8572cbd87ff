/*
 * curl_handle_rss.c: what libcurl alone costs per transfer held open, to
 * tell curl's share of digestd's memory per in-flight job from ours.
 * Adds N GET transfers to one multi handle against a server that accepts
 * and never answers, drives them until all are connected and waiting, and
 * prints the RSS growth per transfer. Optional third argument: a
 * CURLOPT_BUFFERSIZE to try (0 = curl's default).
 *
 *   cc -O2 bench/curl_handle_rss.c -o /tmp/curl_handle_rss -lcurl
 *   python3 -c '...a listener that accepts and holds...' &   (see bench/RESULTS.md)
 *   /tmp/curl_handle_rss 5000 http://127.0.0.1:39233/x 0
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;

    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static size_t discard(char *p, size_t size, size_t n, void *user)
{
    return size * n;
}

int main(int argc, char **argv)
{
    struct rlimit rl = {20000, 20000};
    long before, added, buffer;
    int i, n, running = 1, k;
    CURLM *m;

    if (argc < 3) {
        fprintf(stderr, "usage: %s N URL [BUFFERSIZE]\n", argv[0]);
        return 2;
    }
    n = atoi(argv[1]);
    buffer = argc > 3 ? strtol(argv[3], NULL, 10) : 0;
    setrlimit(RLIMIT_NOFILE, &rl);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    m = curl_multi_init();
    before = rss_kb();
    for (i = 0; i < n; i++) {
        CURL *e = curl_easy_init();
        curl_easy_setopt(e, CURLOPT_URL, argv[2]);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
        if (buffer)
            curl_easy_setopt(e, CURLOPT_BUFFERSIZE, buffer);
        curl_multi_add_handle(m, e);
    }
    added = rss_kb();
    /* Long enough for every connection to be made and its request sent. */
    for (k = 0; k < 200 && running; k++) {
        int fds;
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 10, &fds);
    }
    printf("%d transfers (buffer %ld): %.1f kB each once added, %.1f kB each in flight "
           "(%d still running)\n",
           n, buffer, (double)(added - before) / n, (double)(rss_kb() - before) / n, running);
    return 0;
}
