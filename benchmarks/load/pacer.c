/* An open-loop load generator: requests on a fixed schedule.
 *
 * Request i is due at start + i / rate, whatever became of the ones before
 * it, and its latency runs from that due time to the end of its response.
 * A request that finds every connection busy waits for one, and the wait
 * counts against it: a stall of the target shows in the latency of every
 * request due during the stall, as users would see it (no coordinated
 * omission). Each wait is a nanosecond timeout (epoll_pwait2, with 1 ns
 * timer slack), so requests leave one at a time on their schedule rather
 * than in bunches on millisecond ticks, the way wrk's timers send them.
 *
 * The latency from the actual send is kept too ("service"): the two differ
 * by how late the request was sent, which is the generator waiting for a
 * core (on a machine it shares with the target) or for a free connection
 * (every one with a request in flight). "late" counts the requests sent
 * more than LATE_NS after they were due.
 *
 * One thread, HTTP/1.1 keep-alive, one request in flight per connection,
 * responses framed by Content-Length. benchmarks.load.pacer builds and
 * runs it:
 *
 *   pacer [--post] PORT RATE CONNECTIONS DURATION_S WARMUP_S PREFIX CODES [DUMP]
 *
 * CODES holds one code a line; the paths PREFIX + code are requested in
 * turn (GET). With --post, each line of CODES is instead a JSON body,
 * POSTed in turn to the path PREFIX. Requests due in the first WARMUP_S
 * seconds are sent but not measured. It prints one line, HLR-PACER {...},
 * with the measured requests' figures; DUMP, if given, gets one line per
 * measured request: due time (ns after the first), latency and service
 * time (ns).
 *
 *   pacer --stalls SECONDS
 *
 * measures the machine instead (see measure_stalls).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_BYTES 8192
#define MAX_EVENTS 256
#define DRAIN_NS 2000000000LL /* how long the last requests may take */
#define LATE_NS 100000LL

typedef struct {
    int fd;
    int busy;
    int measured;   /* whether the request in flight counts */
    int64_t due_ns; /* of the request in flight */
    int64_t sent_ns;
    size_t have; /* bytes of its response read so far */
    char buf[BUF_BYTES];
} Conn;

typedef struct {
    char **text;
    size_t *length;
    size_t count;
} Requests;

typedef struct {
    int64_t *due, *latency, *service;
    size_t count;
} Samples;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void fail(const char *what) {
    perror(what);
    exit(2);
}

static void *allocate(size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) fail("calloc");
    return p;
}

static Requests load_requests(const char *path, const char *prefix, int port,
                              int post) {
    FILE *f = fopen(path, "r");
    if (!f) fail(path);
    Requests r = {0};
    size_t capacity = 0, n = 0;
    char *line = NULL;
    ssize_t len;
    while ((len = getline(&line, &n, f)) > 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        if (len == 0) continue;
        if (r.count == capacity) {
            capacity = capacity ? 2 * capacity : 1024;
            r.text = realloc(r.text, capacity * sizeof *r.text);
            r.length = realloc(r.length, capacity * sizeof *r.length);
            if (!r.text || !r.length) fail("realloc");
        }
        int bytes =
            post ? asprintf(&r.text[r.count],
                            "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                            "Content-Type: application/json\r\n"
                            "Content-Length: %zd\r\n\r\n%.*s",
                            prefix, port, len, (int)len, line)
                 : asprintf(&r.text[r.count],
                            "GET %s%.*s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
                            prefix, (int)len, line, port);
        if (bytes < 0) fail("asprintf");
        r.length[r.count++] = (size_t)bytes;
    }
    free(line);
    fclose(f);
    if (r.count == 0) {
        fprintf(stderr, "pacer: %s holds no %s\n", path, post ? "bodies" : "codes");
        exit(2);
    }
    return r;
}

static int open_connection(int port, int epoll_fd, uint32_t index) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) fail("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = index};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) fail("epoll_ctl");
    return fd;
}

/* Whether the whole request went out (a request is far smaller than a
 * socket's buffer). MSG_NOSIGNAL: a closed connection is an error to
 * handle, not SIGPIPE. */
static int send_request(const Conn *c, const Requests *r, size_t which) {
    return send(c->fd, r->text[which], r->length[which], MSG_NOSIGNAL) ==
           (ssize_t)r->length[which];
}

/* The length of the complete response at the front of buf: 0 while it is
 * not all there, -1 when it cannot be one. Sets *status. */
static long response_length(const char *buf, size_t have, int *status) {
    const char *end = memmem(buf, have, "\r\n\r\n", 4);
    if (!end) return have >= BUF_BYTES ? -1 : 0;
    if (end - buf < 12 || memcmp(buf, "HTTP/1.", 7) != 0) return -1;
    *status = atoi(buf + 9);
    long body = 0;
    for (const char *line = memchr(buf, '\n', (size_t)(end - buf)); line && line < end;
         line = memchr(line, '\n', (size_t)(end + 2 - line))) {
        line++;
        if (end - line > 15 && strncasecmp(line, "content-length:", 15) == 0)
            body = strtol(line + 15, NULL, 10);
    }
    long total = (long)(end - buf) + 4 + body;
    if (body < 0 || total > BUF_BYTES) return -1;
    return (size_t)total <= have ? total : 0;
}

static int ascending(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double quantile_ms(const int64_t *sorted, size_t n, double q) {
    if (n == 0) return 0.0;
    size_t i = (size_t)(q * (double)n);
    return (double)sorted[i < n ? i : n - 1] / 1e6;
}

static void dump_samples(const char *path, const Samples *s) {
    FILE *f = fopen(path, "w");
    if (!f) fail(path);
    for (size_t i = 0; i < s->count; i++)
        fprintf(f, "%lld %lld %lld\n", (long long)s->due[i], (long long)s->latency[i],
                (long long)s->service[i]);
    fclose(f);
}

/* `pacer --stalls SECONDS`: spin on the clock for SECONDS and report the
 * gaps between two readings longer than LATE_NS: time this core was taken
 * from a runnable thread (by the hypervisor, or by whatever else runs). */
static int measure_stalls(double seconds) {
    const int64_t end = now_ns() + (int64_t)(seconds * 1e9);
    int64_t previous = now_ns(), stalled = 0, longest = 0;
    unsigned long long gaps = 0;
    for (int64_t now = previous; now < end; previous = now) {
        now = now_ns();
        const int64_t gap = now - previous;
        if (gap > LATE_NS) {
            gaps++;
            stalled += gap;
            if (gap > longest) longest = gap;
        }
    }
    printf("HLR-STALLS {\"seconds\": %.3f, \"gaps\": %llu, \"stalled_ms\": %.4f, "
           "\"longest_ms\": %.4f}\n",
           seconds, gaps, (double)stalled / 1e6, (double)longest / 1e6);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--stalls") == 0 && atof(argv[2]) > 0)
        return measure_stalls(atof(argv[2]));
    const char *program = argv[0];
    const int post = argc > 1 && strcmp(argv[1], "--post") == 0;
    argc -= post;
    argv += post;
    if (argc != 8 && argc != 9) {
        fprintf(stderr,
                "usage: %s [--post] PORT RATE CONNECTIONS DURATION_S WARMUP_S PREFIX "
                "CODES [DUMP]\n       %s --stalls SECONDS\n",
                program, program);
        return 2;
    }
    const int port = atoi(argv[1]), connections = atoi(argv[3]);
    const double rate = atof(argv[2]), duration_s = atof(argv[4]);
    const double warmup_s = atof(argv[5]);
    if (port <= 0 || port > 65535 || rate <= 0 || connections <= 0 ||
        duration_s <= 0 || warmup_s < 0) {
        fprintf(stderr, "pacer: PORT, RATE, CONNECTIONS and DURATION_S must be "
                        "positive and WARMUP_S not negative\n");
        return 2;
    }
    const Requests requests = load_requests(argv[7], argv[6], port, post);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

    const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0) fail("epoll_create1");
    Conn *conns = allocate((size_t)connections * sizeof *conns);
    /* Idle connections, first in first out, so that every one of them
     * keeps being used and none idles into the target's keep-alive timeout. */
    int *idle = allocate((size_t)connections * sizeof *idle);
    int idle_first = 0, idle_count = 0;
    for (int i = 0; i < connections; i++) {
        conns[i].fd = open_connection(port, epoll_fd, (uint32_t)i);
        idle[idle_count++] = i;
    }

    const double interval_ns = 1e9 / rate;
    const uint64_t warm = (uint64_t)(warmup_s * rate);
    const uint64_t total = warm + (uint64_t)(duration_s * rate);
    const size_t capacity = (size_t)(total - warm);
    Samples s = {allocate(capacity * sizeof(int64_t)), allocate(capacity * sizeof(int64_t)),
                 allocate(capacity * sizeof(int64_t)), 0};
    uint64_t next = 0, late = 0, socket_errors = 0, status_errors = 0;
    int64_t max_lag = 0;
    struct epoll_event events[MAX_EVENTS];
    const int64_t start = now_ns() + 1000000; /* a millisecond to settle */
    const int64_t stop_by = start + (int64_t)((double)total * interval_ns) + DRAIN_NS;

    for (;;) {
        int64_t now = now_ns();
        while (next < total && idle_count > 0) {
            const int64_t due = start + (int64_t)((double)next * interval_ns);
            if (due > now) break;
            Conn *c = &conns[idle[idle_first]];
            idle_first = (idle_first + 1) % connections;
            idle_count--;
            const size_t which = next % requests.count;
            const int i = (int)(c - conns);
            if (!send_request(c, &requests, which)) {
                /* The target closed it while it was idle (a keep-alive
                 * timeout): the same request on a new connection. */
                epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = open_connection(port, epoll_fd, (uint32_t)i);
                if (!send_request(c, &requests, which)) fail("send");
            }
            if (next >= warm) {
                if (now - due > max_lag) max_lag = now - due;
                if (now - due > LATE_NS) late++;
            }
            c->busy = 1;
            c->measured = next >= warm;
            c->due_ns = due;
            c->sent_ns = now;
            c->have = 0;
            next++;
        }
        if ((next >= total && idle_count == connections) || now >= stop_by) break;
        int64_t wait_ns = stop_by - now;
        if (next < total && idle_count > 0) {
            const int64_t due = start + (int64_t)((double)next * interval_ns);
            if (due - now < wait_ns) wait_ns = due - now;
        }
        if (wait_ns < 0) wait_ns = 0;
        struct timespec timeout = {wait_ns / 1000000000LL, wait_ns % 1000000000LL};
        const int ready = epoll_pwait2(epoll_fd, events, MAX_EVENTS, &timeout, NULL);
        if (ready < 0) {
            if (errno == EINTR) continue;
            fail("epoll_pwait2");
        }
        for (int e = 0; e < ready; e++) {
            const int i = (int)events[e].data.u32;
            Conn *c = &conns[i];
            const ssize_t got = read(c->fd, c->buf + c->have, BUF_BYTES - c->have);
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            int status = 0;
            const long length =
                got > 0 ? response_length(c->buf, c->have + (size_t)got, &status) : -1;
            if (got > 0) c->have += (size_t)got;
            if (length == 0) continue;
            if (length < 0 || (size_t)length != c->have || !c->busy) {
                /* Closed, failed, unreadable or unasked for: go on with a
                 * new connection. Only a request lost with it is an error
                 * (the target may close an idle one). */
                if (c->busy || got > 0) socket_errors++;
                epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = open_connection(port, epoll_fd, (uint32_t)i);
            } else if (c->measured) {
                const int64_t done = now_ns();
                s.due[s.count] = c->due_ns - start - (int64_t)((double)warm * interval_ns);
                s.latency[s.count] = done - c->due_ns;
                s.service[s.count++] = done - c->sent_ns;
                if (status >= 400) status_errors++;
            }
            if (c->busy) idle[(idle_first + idle_count++) % connections] = i;
            c->busy = 0;
            c->have = 0;
        }
    }
    if (argc == 9) dump_samples(argv[8], &s);

    double sum_ns = 0;
    for (size_t i = 0; i < s.count; i++) sum_ns += (double)s.latency[i];
    qsort(s.latency, s.count, sizeof(int64_t), ascending);
    qsort(s.service, s.count, sizeof(int64_t), ascending);
    printf("HLR-PACER {\"requests\": %zu, \"due\": %llu, \"unanswered\": %llu, "
           "\"duration_s\": %.3f, \"rate_per_s\": %.3f, \"p50_ms\": %.4f, "
           "\"p95_ms\": %.4f, \"p99_ms\": %.4f, \"p999_ms\": %.4f, \"mean_ms\": %.4f, "
           "\"max_ms\": %.4f, \"service_p50_ms\": %.4f, \"service_p99_ms\": %.4f, "
           "\"late\": %llu, \"max_lag_ms\": %.4f, \"socket_errors\": %llu, "
           "\"status_errors\": %llu}\n",
           s.count, (unsigned long long)(total - warm),
           (unsigned long long)(connections - idle_count), duration_s, rate,
           quantile_ms(s.latency, s.count, 0.50), quantile_ms(s.latency, s.count, 0.95),
           quantile_ms(s.latency, s.count, 0.99), quantile_ms(s.latency, s.count, 0.999),
           s.count ? sum_ns / (double)s.count / 1e6 : 0.0,
           s.count ? (double)s.latency[s.count - 1] / 1e6 : 0.0,
           quantile_ms(s.service, s.count, 0.50), quantile_ms(s.service, s.count, 0.99),
           (unsigned long long)late, (double)max_lag / 1e6,
           (unsigned long long)socket_errors, (unsigned long long)status_errors);
    return 0;
}
