/* The libcurl floor under the proxy's upstream side: the rig's POST to the same FakeLLM through
 * one curl multi handle, from C, with nothing else: no server side, no thread hand-off, no
 * Swift. Each easy handle is reset and given the options CurlTransfer sets, then re-added as
 * soon as its transfer ends, so `CONCURRENT` transfers are always in flight over kept-alive
 * connections. What the proxy's curl thread spends above this is ours; below it, only a
 * different HTTP client can go.
 * Usage: floor URL CONCURRENT TRANSFERS (a tenth more run first, unmeasured, to warm up) */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* bench/chat.lua's body. */
static const char body[] = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello in five words.\"}]}";
static const char *url;
static struct curl_slist *headers;
static char errors[CURL_ERROR_SIZE];

static size_t discard(char *data, size_t size, size_t count, void *user) {
    (void)data; (void)user;
    return size * count;
}

/* As CurlTransfer.configure, for a POST over HTTP/1.1. */
static void configure(CURL *h) {
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errors);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(sizeof body - 1));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
}

static double cpuMicros(int user) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    double u = r.ru_utime.tv_sec * 1e6 + r.ru_utime.tv_usec;
    return user ? u : u + r.ru_stime.tv_sec * 1e6 + r.ru_stime.tv_usec;
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: floor URL CONCURRENT TRANSFERS\n"); return 2; }
    url = argv[1];
    int concurrent = atoi(argv[2]);
    long transfers = atol(argv[3]), warmup = transfers / 10;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    headers = curl_slist_append(NULL, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Authorization: Bearer sk-floor");
    headers = curl_slist_append(headers, "Expect:");
    CURLM *multi = curl_multi_init();
    for (int i = 0; i < concurrent; i++) {
        CURL *h = curl_easy_init();
        configure(h);
        curl_multi_add_handle(multi, h);
    }
    long done = 0, failed = 0;
    double cpu0 = 0, user0 = 0, wall0 = 0;
    while (done < warmup + transfers) {
        int running, queued;
        curl_multi_perform(multi, &running);
        CURLMsg *message;
        while ((message = curl_multi_info_read(multi, &queued))) {
            if (message->msg != CURLMSG_DONE) continue;
            CURL *h = message->easy_handle;
            long status = 0;
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
            if (message->data.result != CURLE_OK || status != 200) failed++;
            curl_multi_remove_handle(multi, h);
            if (++done == warmup) { cpu0 = cpuMicros(0); user0 = cpuMicros(1); wall0 = seconds(); }
            configure(h);
            curl_multi_add_handle(multi, h);
        }
        curl_multi_poll(multi, NULL, 0, 1000, NULL);
    }
    double cpu = cpuMicros(0) - cpu0, user = cpuMicros(1) - user0, wall = seconds() - wall0;
    printf("curl floor: %d concurrent: %ld transfers, %.1f us CPU per transfer (user %.1f, system %.1f), %.0f transfers/s, %ld failed\n",
           concurrent, transfers, cpu / transfers, user / transfers, (cpu - user) / transfers, transfers / wall, failed);
    return failed > 0;
}
