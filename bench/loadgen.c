/*
 * loadgen: a load generator for NUT's network protocol (RFC 9271).
 *
 * Built by bench/upsd_bench.py (gcc -O2 -o bench/out/loadgen).  Loopback
 * benchmarking only: every mode runs for a bounded time.
 *
 * Modes (-m):
 *   steady   N persistent connections (-c), each sending
 *            "GET VAR <ups> <var>\n" in a closed loop (one request
 *            outstanding per connection), for -d seconds after a -w
 *            (1 s) warm-up that lasts until every connection has had a
 *            reply.  Reports requests/s and latency percentiles.
 *   connect  N concurrent slots, each doing connect + GET VAR + close in a
 *            closed loop.  Reports completed cycles/s and the latency of
 *            the whole cycle (connect start to reply).
 *   list     one ordinary blocking client (Nagle on, no TCP_QUICKACK):
 *            "LIST VAR <ups>\n", read to "END LIST VAR", repeat for -d s.
 *   idle     open N connections, then poll each one with GET VAR every -i
 *            ms (default 5000), staggered evenly.  The first round (until
 *            every connection has had a reply) is a warm-up, reported apart;
 *            then -d seconds are measured.  Reports latency percentiles,
 *            late sends and errors.
 *
 * Latency is measured per request (CLOCK_MONOTONIC at send, at the reply's
 * final newline) into a log-linear histogram (<1% error).
 *
 * Output: human-readable lines, and one line "RESULT key=value ..." for
 * scripts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* --- histogram (microseconds) ------------------------------------------ */

#define SUB 128
#define NBUCKETS (2 * SUB + 48 * SUB)

typedef struct {
    uint64_t b[NBUCKETS];
    uint64_t n;
    uint64_t max;
    double sum;
} hist_t;

static int bucket(uint64_t us)
{
    if (us < 2 * SUB)
        return (int)us;
    int msb = 63 - __builtin_clzll(us);
    int shift = msb - 7;                 /* us >> shift in [128, 255] */
    int idx = 2 * SUB + (shift - 1) * SUB + (int)((us >> shift) - SUB);
    return idx < NBUCKETS ? idx : NBUCKETS - 1;
}

static double bucket_value(int idx)
{
    if (idx < 2 * SUB)
        return idx;
    int shift = (idx - 2 * SUB) / SUB + 1;
    uint64_t top = (uint64_t)((idx - 2 * SUB) % SUB + SUB);
    return ((double)(top << shift) + (double)((top + 1) << shift)) / 2.0;
}

static void hist_add(hist_t *h, uint64_t us)
{
    h->b[bucket(us)]++;
    h->n++;
    h->sum += (double)us;
    if (us > h->max)
        h->max = us;
}

static double hist_pct(const hist_t *h, double p)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(p / 100.0 * (double)h->n);
    if (want >= h->n)
        want = h->n - 1;
    uint64_t seen = 0;
    for (int i = 0; i < NBUCKETS; i++) {
        seen += h->b[i];
        if (seen > want)
            return bucket_value(i);
    }
    return (double)h->max;
}

/* --- helpers ------------------------------------------------------------ */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static struct sockaddr_in server;

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL, 0);
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Start a non-blocking connect; returns the fd or -1. */
static int start_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&server, sizeof server) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (rl.rlim_max < want)
            rl.rlim_max = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            getrlimit(RLIMIT_NOFILE, &rl);
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
}

/* --- per-connection state ---------------------------------------------- */

enum { ST_CONNECTING, ST_IDLE, ST_WAITING, ST_DEAD };

typedef struct {
    int fd;
    int state;
    uint64_t sent_at;     /* when the outstanding request was sent */
    uint64_t started_at;  /* connect mode: when the cycle began */
    size_t have;
    char buf[512];
} conn_t;

static const char *opt_host = "127.0.0.1";
static int opt_port = 3493;
static const char *opt_mode = "steady";
static int opt_conns = 1;
static double opt_seconds = 5.0;
static double opt_warmup = 1.0;
static const char *opt_ups = "ups";
static const char *opt_var = "ups.status";
static int opt_interval_ms = 5000;

static char request[256];
static size_t request_len;

static hist_t hist;
static uint64_t n_errors, n_bad_replies, n_late, n_overrun;
static uint64_t n_total; /* every reply, warm-up included (for CPU per request) */
static uint64_t max_late_us;

/* Read what is there; returns 1 when a whole line is in, 0 if not yet,
 * -1 on EOF/error. */
/* The machine-readable line the bench script parses (steady, connect). */
static void print_result(const char *mode, double secs, uint64_t done)
{
    printf("RESULT mode=%s conns=%d seconds=%.1f requests=%llu rps=%.1f p50_us=%.0f p99_us=%.0f "
           "p999_us=%.0f max_us=%llu errors=%llu bad=%llu total=%llu\n",
           mode, opt_conns, secs, (unsigned long long)done, (double)done / secs, hist_pct(&hist, 50),
           hist_pct(&hist, 99), hist_pct(&hist, 99.9), (unsigned long long)hist.max,
           (unsigned long long)n_errors, (unsigned long long)n_bad_replies, (unsigned long long)n_total);
}

static int read_line(conn_t *c)
{
    for (;;) {
        ssize_t r = read(c->fd, c->buf + c->have, sizeof c->buf - c->have);
        if (r > 0) {
            c->have += (size_t)r;
            if (memchr(c->buf, '\n', c->have))
                return 1;
            if (c->have == sizeof c->buf)
                return -1; /* a GET VAR reply never is this long */
            continue;
        }
        if (r == 0)
            return -1;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno == EINTR)
            continue;
        return -1;
    }
}

static int send_request(conn_t *c, uint64_t t)
{
    ssize_t w = write(c->fd, request, request_len);
    if (w != (ssize_t)request_len)
        return -1; /* a 40-byte write to an idle socket never blocks */
    c->sent_at = t;
    c->have = 0;
    c->state = ST_WAITING;
    return 0;
}

static void check_reply(conn_t *c)
{
    if (c->have < 4 || memcmp(c->buf, "VAR ", 4) != 0)
        n_bad_replies++;
}

/* --- steady: persistent connections, closed loop ------------------------ */

static void run_steady(void)
{
    conn_t *conns = calloc((size_t)opt_conns, sizeof *conns);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || ep < 0)
        die("setup");
    for (int i = 0; i < opt_conns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&server, sizeof server) < 0)
            die("connect");
        set_nonblock(fd);
        conns[i].fd = fd;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &conns[i] };
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    /* Measuring starts after the warm-up, once every connection has had
     * one reply (a server with a short listen backlog accepts a burst of
     * connections slowly), and at the latest 60 s after the start. */
    uint64_t t0 = now_us();
    uint64_t warm_until = t0 + (uint64_t)(opt_warmup * 1e6);
    uint64_t warm_deadline = t0 + 60u * 1000000u;
    uint64_t measure_from = UINT64_MAX, end = UINT64_MAX;
    int answered_once = 0;
    char *seen = calloc((size_t)(unsigned)opt_conns, 1);
    for (int i = 0; i < opt_conns; i++)
        if (send_request(&conns[i], now_us()) < 0)
            die("write");
    struct epoll_event evs[1024];
    uint64_t done = 0;
    int alive = opt_conns;
    for (;;) {
        uint64_t t = now_us();
        if (measure_from == UINT64_MAX && t >= warm_until &&
            (answered_once == opt_conns || t >= warm_deadline)) {
            measure_from = t;
            end = t + (uint64_t)(opt_seconds * 1e6);
        }
        if (t >= end || alive == 0)
            break;
        int timeout = end == UINT64_MAX ? 100 : (int)((end - t) / 1000) + 1;
        int n = epoll_wait(ep, evs, 1024, timeout);
        t = now_us();
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            if (c->state != ST_WAITING)
                continue;
            int r = read_line(c);
            if (r == 0)
                continue;
            if (r < 0) {
                n_errors++;
                c->state = ST_DEAD;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                alive--;
                continue;
            }
            if (!seen[c - conns]) {
                seen[c - conns] = 1;
                answered_once++;
            }
            n_total++;
            if (c->sent_at >= measure_from && t <= end) {
                hist_add(&hist, t - c->sent_at);
                check_reply(c);
                done++;
            }
            if (send_request(c, t) < 0) {
                n_errors++;
                c->state = ST_DEAD;
                alive--;
            }
        }
    }
    double secs = opt_seconds;
    printf("steady: %d connections, %.1f s: %llu requests, %.0f req/s\n", opt_conns, secs,
           (unsigned long long)done, (double)done / secs);
    print_result("steady", secs, done);
    for (int i = 0; i < opt_conns; i++)
        if (conns[i].state != ST_DEAD)
            close(conns[i].fd);
    free(conns);
    free(seen);
    close(ep);
}

/* --- connect: connect + GET + close, closed loop ------------------------ */

static int begin_cycle(int ep, conn_t *c, uint64_t t)
{
    int fd = start_connect();
    if (fd < 0)
        return -1;
    c->fd = fd;
    c->state = ST_CONNECTING;
    c->started_at = t;
    c->have = 0;
    struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static void run_connect(void)
{
    conn_t *conns = calloc((size_t)opt_conns, sizeof *conns);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || ep < 0)
        die("setup");
    uint64_t t0 = now_us();
    uint64_t measure_from = t0 + (uint64_t)(opt_warmup * 1e6);
    uint64_t end = measure_from + (uint64_t)(opt_seconds * 1e6);
    for (int i = 0; i < opt_conns; i++)
        if (begin_cycle(ep, &conns[i], now_us()) < 0)
            n_errors++;
    struct epoll_event evs[1024];
    uint64_t done = 0;
    for (;;) {
        uint64_t t = now_us();
        if (t >= end)
            break;
        int n = epoll_wait(ep, evs, 1024, (int)((end - t) / 1000) + 1);
        t = now_us();
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            int failed = 0;
            if (c->state == ST_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0 || send_request(c, t) < 0) {
                    failed = 1;
                } else {
                    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                    continue;
                }
            } else if (c->state == ST_WAITING) {
                int r = read_line(c);
                if (r == 0)
                    continue;
                if (r > 0)
                    n_total++;
                if (r < 0) {
                    failed = 1;
                } else if (c->started_at >= measure_from && t <= end) {
                    hist_add(&hist, t - c->started_at);
                    check_reply(c);
                    done++;
                }
            }
            if (failed)
                n_errors++;
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            if (begin_cycle(ep, c, now_us()) < 0) {
                n_errors++;
                c->state = ST_DEAD;
            }
        }
    }
    double secs = opt_seconds;
    printf("connect: %d slots, %.1f s: %llu connect+GET+close cycles, %.0f cycles/s\n", opt_conns, secs,
           (unsigned long long)done, (double)done / secs);
    print_result("connect", secs, done);
    for (int i = 0; i < opt_conns; i++)
        if (conns[i].state != ST_DEAD)
            close(conns[i].fd);
    free(conns);
    close(ep);
}

/* --- list: an ordinary blocking client ------------------------------------ */

static void run_list(void)
{
    char req[256], end_marker[256];
    snprintf(req, sizeof req, "LIST VAR %s\n", opt_ups);
    snprintf(end_marker, sizeof end_marker, "END LIST VAR %s\n", opt_ups);
    size_t req_len = strlen(req), end_len = strlen(end_marker);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&server, sizeof server) < 0)
        die("connect");
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    uint64_t t0 = now_us();
    uint64_t measure_from = t0 + (uint64_t)(opt_warmup * 1e6);
    uint64_t end = measure_from + (uint64_t)(opt_seconds * 1e6);
    uint64_t done = 0, bytes = 0;
    while (now_us() < end) {
        uint64_t t = now_us();
        if (write(fd, req, req_len) != (ssize_t)req_len)
            die("write");
        size_t have = 0;
        for (;;) {
            ssize_t r = read(fd, buf + have, cap - have);
            if (r <= 0)
                die("read");
            have += (size_t)r;
            if (have >= end_len && memcmp(buf + have - end_len, end_marker, end_len) == 0)
                break;
            if (have == cap)
                die("LIST reply too long");
        }
        uint64_t t1 = now_us();
        if (t >= measure_from) {
            hist_add(&hist, t1 - t);
            done++;
            bytes = have;
            if (memcmp(buf, "BEGIN LIST VAR ", 15) != 0)
                n_bad_replies++;
        }
    }
    printf("list: 1 blocking client, %.1f s: %llu LIST VAR (%llu bytes each)\n", opt_seconds,
           (unsigned long long)done, (unsigned long long)bytes);
    printf("RESULT mode=list conns=1 seconds=%.1f requests=%llu rps=%.1f p50_us=%.0f p99_us=%.0f "
           "p999_us=%.0f max_us=%llu errors=%llu bad=%llu bytes=%llu\n",
           opt_seconds, (unsigned long long)done, (double)done / opt_seconds, hist_pct(&hist, 50),
           hist_pct(&hist, 99), hist_pct(&hist, 99.9), (unsigned long long)hist.max,
           (unsigned long long)n_errors, (unsigned long long)n_bad_replies, (unsigned long long)bytes);
    free(buf);
    close(fd);
}

/* --- idle: many connections, each polled every interval ------------------ */

static void run_idle(void)
{
    raise_nofile((rlim_t)opt_conns + 1024);
    conn_t *conns = calloc((size_t)opt_conns, sizeof *conns);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || ep < 0)
        die("setup");
    struct epoll_event evs[1024];

    /* Open them all, at most 256 handshakes in flight. */
    uint64_t open_start = now_us();
    int opened = 0, connected = 0, in_flight = 0;
    uint64_t open_deadline = open_start + 120u * 1000000u;
    while (connected + (int)n_errors < opt_conns) {
        while (in_flight < 256 && opened < opt_conns) {
            conn_t *c = &conns[opened++];
            c->fd = start_connect();
            if (c->fd < 0) {
                c->state = ST_DEAD;
                n_errors++;
                continue;
            }
            c->state = ST_CONNECTING;
            struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            in_flight++;
        }
        if (now_us() > open_deadline) {
            fprintf(stderr, "idle: gave up opening connections after 120 s\n");
            break;
        }
        int n = epoll_wait(ep, evs, 1024, 1000);
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            if (c->state != ST_CONNECTING)
                continue;
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            in_flight--;
            if (err != 0) {
                n_errors++;
                c->state = ST_DEAD;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                continue;
            }
            c->state = ST_IDLE;
            struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            connected++;
        }
    }
    double open_secs = (double)(now_us() - open_start) / 1e6;
    printf("idle: %d of %d connections open after %.1f s\n", connected, opt_conns, open_secs);
    fflush(stdout);

    /* Poll: connection k % N is due at t0 + k * interval / N.  The first
     * round (until every connection has had one reply, at most 60 s) is a
     * warm-up, measured apart: a server may still be accepting. */
    uint64_t interval = (uint64_t)opt_interval_ms * 1000u;
    uint64_t t0 = now_us();
    uint64_t warm_deadline = t0 + 60u * 1000000u;
    uint64_t measure_from = UINT64_MAX, end = UINT64_MAX;
    uint64_t k = 0;
    uint64_t done = 0, eofs = 0;
    int answered_once = 0;
    char *seen = calloc((size_t)(unsigned)opt_conns, 1);
    static hist_t warm;
    for (;;) {
        uint64_t t = now_us();
        if (measure_from == UINT64_MAX && (answered_once >= connected || t >= warm_deadline)) {
            measure_from = t;
            end = t + (uint64_t)(opt_seconds * 1e6);
        }
        if (t >= end)
            break;
        /* Send everything that is due. */
        for (;;) {
            uint64_t due = t0 + k * interval / (uint64_t)opt_conns;
            if (due > t || due >= end)
                break;
            conn_t *c = &conns[k % (uint64_t)opt_conns];
            k++;
            if (c->state == ST_IDLE) {
                uint64_t late = t - due;
                if (late > 1000 && t >= measure_from)
                    n_late++;
                if (late > max_late_us && t >= measure_from)
                    max_late_us = late;
                if (send_request(c, t) < 0) {
                    n_errors++;
                    c->state = ST_DEAD;
                }
            } else if (c->state == ST_WAITING) {
                n_overrun++; /* the previous poll is still unanswered */
            }
        }
        uint64_t next_due = t0 + k * interval / (uint64_t)opt_conns;
        int timeout_ms = next_due > t ? (int)((next_due - t) / 1000) : 0;
        if (timeout_ms > 100)
            timeout_ms = 100;
        int n = epoll_wait(ep, evs, 1024, timeout_ms);
        t = now_us();
        for (int j = 0; j < n; j++) {
            conn_t *c = evs[j].data.ptr;
            int r = read_line(c);
            if (r == 0)
                continue;
            if (r < 0) {
                eofs++;
                c->state = ST_DEAD;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                continue;
            }
            if (c->state == ST_WAITING) {
                if (c->sent_at >= measure_from) {
                    hist_add(&hist, t - c->sent_at);
                    check_reply(c);
                    done++;
                } else {
                    hist_add(&warm, t - c->sent_at);
                }
                if (!seen[c - conns]) {
                    seen[c - conns] = 1;
                    answered_once++;
                }
                c->state = ST_IDLE;
                c->have = 0;
            } else {
                n_bad_replies++; /* unsolicited bytes */
                c->have = 0;
            }
        }
    }
    double warm_secs = (double)(measure_from - t0) / 1e6;
    printf("idle: warm-up (one reply on every connection) took %.1f s, its p99 %.0f us, max %llu us\n",
           warm_secs, hist_pct(&warm, 99), (unsigned long long)warm.max);
    printf("idle: %d connections polled every %d ms for %.1f s: %llu polls, %.0f req/s\n", connected,
           opt_interval_ms, opt_seconds, (unsigned long long)done, (double)done / opt_seconds);
    printf("RESULT mode=idle conns=%d open=%d open_s=%.1f warm_s=%.1f warm_p99_us=%.0f warm_max_us=%llu "
           "seconds=%.1f requests=%llu rps=%.1f p50_us=%.0f "
           "p99_us=%.0f p999_us=%.0f max_us=%llu errors=%llu eofs=%llu bad=%llu late=%llu "
           "max_late_us=%llu overruns=%llu\n",
           opt_conns, connected, open_secs, warm_secs, hist_pct(&warm, 99), (unsigned long long)warm.max,
           opt_seconds, (unsigned long long)done,
           (double)done / opt_seconds, hist_pct(&hist, 50), hist_pct(&hist, 99), hist_pct(&hist, 99.9),
           (unsigned long long)hist.max, (unsigned long long)n_errors, (unsigned long long)eofs,
           (unsigned long long)n_bad_replies, (unsigned long long)n_late, (unsigned long long)max_late_us,
           (unsigned long long)n_overrun);
    fflush(stdout);
    for (int i = 0; i < opt_conns; i++)
        if (conns[i].state != ST_DEAD && conns[i].fd > 0)
            close(conns[i].fd);
    free(conns);
    free(seen);
    close(ep);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen -p PORT [-H 127.0.0.1] [-m steady|connect|list|idle] [-c CONNS]\n"
            "               [-d SECONDS] [-w WARMUP] [-u UPS] [-v VAR] [-i INTERVAL_MS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "H:p:m:c:d:w:u:v:i:")) != -1) {
        switch (opt) {
        case 'H': opt_host = optarg; break;
        case 'p': opt_port = atoi(optarg); break;
        case 'm': opt_mode = optarg; break;
        case 'c': opt_conns = atoi(optarg); break;
        case 'd': opt_seconds = atof(optarg); break;
        case 'w': opt_warmup = atof(optarg); break;
        case 'u': opt_ups = optarg; break;
        case 'v': opt_var = optarg; break;
        case 'i': opt_interval_ms = atoi(optarg); break;
        default: usage();
        }
    }
    /* Bounded by design: at most 10 minutes, at most 60000 connections. */
    if (opt_conns < 1 || opt_conns > 60000 || opt_seconds <= 0 || opt_seconds > 600 || opt_warmup < 0 ||
        opt_warmup > 60 || opt_interval_ms < 1)
        usage();
    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)opt_port);
    if (inet_pton(AF_INET, opt_host, &server.sin_addr) != 1)
        usage();
    if (server.sin_addr.s_addr != htonl(INADDR_LOOPBACK) && (ntohl(server.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "loadgen: loopback only\n");
        return 2;
    }
    request_len = (size_t)snprintf(request, sizeof request, "GET VAR %s %s\n", opt_ups, opt_var);
    raise_nofile((rlim_t)opt_conns + 1024);
    if (strcmp(opt_mode, "steady") == 0)
        run_steady();
    else if (strcmp(opt_mode, "connect") == 0)
        run_connect();
    else if (strcmp(opt_mode, "list") == 0)
        run_list();
    else if (strcmp(opt_mode, "idle") == 0)
        run_idle();
    else
        usage();
    return 0;
}
