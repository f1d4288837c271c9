/*
 * nutload: a load generator for NUT's network protocol with STARTTLS.
 *
 * Why C: the benchmark must measure the server, so the client has to spend
 * far less CPU per handshake than the server does.  One process, epoll,
 * non-blocking sockets and OpenSSL's non-blocking handshake keep CONC
 * connections in flight on one core.
 *
 * Modes:
 *   handshake  connect, STARTTLS, TLS handshake (verifying the server as
 *              NAME against CAFILE), PROTVER, close; repeat.
 *   tls-req    CONC connections do STARTTLS once, then GET VAR UPS
 *              ups.status in a loop, one request outstanding each.
 *   plain-req  the same without TLS.
 *   plain-conn connect, PROTVER, close; repeat (the cost of a connection
 *              without TLS, for comparison with handshake).
 *
 * Prints one line of key=value pairs.
 *
 * Build: gcc -O2 -o nutload nutload.c -lssl -lcrypto
 * Usage: nutload HOST PORT MODE CONC SECONDS CAFILE NAME UPS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { M_HANDSHAKE, M_TLSREQ, M_PLAINREQ, M_PLAINCONN };
enum { S_CONNECT, S_STARTTLS, S_HANDSHAKE, S_WRITE, S_READ };

typedef struct {
    int fd;
    SSL *ssl;
    int state;
    int events;
    char buf[1024];
    int blen;
    double t0;
    int established;
} conn_t;

static int mode, conc;
static struct sockaddr_in addr;
static SSL_CTX *ctx;
static const char *name;
static int ep;
static char request[256];
static int reqlen;
static double t_end, t_measure = -1;
static long completed, errors, established_count;
static double *lat;
static long nlat, maxlat = 4000000;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void want(conn_t *c, int events) {
    if (c->events == events) return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

static void start(conn_t *c) {
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) { perror("socket"); exit(2); }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->t0 = now();
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 && errno != EINPROGRESS) {
        perror("connect"); exit(2);
    }
    c->state = S_CONNECT;
    c->events = EPOLLOUT;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void finish(conn_t *c, int failed) {
    if (c->ssl) {
        if (!failed) SSL_shutdown(c->ssl); /* one close_notify, no wait */
        SSL_free(c->ssl);
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (failed) errors++;
    if (now() < t_end) start(c);
    else c->fd = -1;
}

/* Advance one connection as far as it goes without blocking. */
static void step(conn_t *c) {
    for (;;) {
        switch (c->state) {
        case S_CONNECT: {
            int err = 0; socklen_t len = sizeof(err);
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) { finish(c, 1); return; }
            if (mode == M_PLAINREQ || mode == M_PLAINCONN) {
                c->established = 1; established_count++;
                c->state = S_WRITE;
                break;
            }
            if (write(c->fd, "STARTTLS\n", 9) != 9) { finish(c, 1); return; }
            c->state = S_STARTTLS;
            want(c, EPOLLIN);
            return;
        }
        case S_STARTTLS: {
            ssize_t n = read(c->fd, c->buf + c->blen, sizeof(c->buf) - 1 - c->blen);
            if (n < 0 && errno == EAGAIN) return;
            if (n <= 0) { finish(c, 1); return; }
            c->blen += n;
            c->buf[c->blen] = 0;
            if (!memchr(c->buf, '\n', c->blen)) return;
            if (strcmp(c->buf, "OK STARTTLS\n") != 0) {
                fprintf(stderr, "STARTTLS answered: %s", c->buf);
                finish(c, 1); return;
            }
            c->blen = 0;
            c->ssl = SSL_new(ctx);
            SSL_set_fd(c->ssl, c->fd);
            SSL_set_connect_state(c->ssl);
            SSL_set_tlsext_host_name(c->ssl, name);
            SSL_set1_host(c->ssl, name);
            c->state = S_HANDSHAKE;
            break;
        }
        case S_HANDSHAKE: {
            int r = SSL_do_handshake(c->ssl);
            if (r == 1) {
                c->established = 1; established_count++;
                c->state = S_WRITE;
                break;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ) { want(c, EPOLLIN); return; }
            if (e == SSL_ERROR_WANT_WRITE) { want(c, EPOLLOUT); return; }
            if (errors < 3) ERR_print_errors_fp(stderr);
            finish(c, 1); return;
        }
        case S_WRITE: {
            int once = mode == M_HANDSHAKE || mode == M_PLAINCONN;
            const char *req = once ? "PROTVER\n" : request;
            int len = once ? 8 : reqlen;
            int r = c->ssl ? SSL_write(c->ssl, req, len) : (int)write(c->fd, req, len);
            if (r != len) { finish(c, 1); return; }
            c->state = S_READ;
            c->blen = 0;
            want(c, EPOLLIN);
            break;
        }
        case S_READ: {
            int n;
            if (c->ssl) {
                n = SSL_read(c->ssl, c->buf + c->blen, sizeof(c->buf) - 1 - c->blen);
                if (n <= 0) {
                    int e = SSL_get_error(c->ssl, n);
                    if (e == SSL_ERROR_WANT_READ) return;
                    if (e == SSL_ERROR_WANT_WRITE) { want(c, EPOLLOUT); return; }
                    finish(c, 1); return;
                }
            } else {
                n = (int)read(c->fd, c->buf + c->blen, sizeof(c->buf) - 1 - c->blen);
                if (n < 0 && errno == EAGAIN) return;
                if (n <= 0) { finish(c, 1); return; }
            }
            c->blen += n;
            if (!memchr(c->buf, '\n', c->blen)) break;
            double t = now();
            if (mode == M_HANDSHAKE || mode == M_PLAINCONN) {
                if (t <= t_end) {
                    completed++;
                    if (nlat < maxlat) lat[nlat++] = t - c->t0;
                }
                finish(c, 0);
                return;
            }
            if (t_measure >= 0 && t <= t_end) completed++;
            if (t >= t_end) { finish(c, 0); return; }
            c->t0 = t;
            c->state = S_WRITE;
            break;
        }
        }
    }
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s HOST PORT handshake|tls-req|plain-req|plain-conn CONC SECONDS CAFILE NAME UPS\n", argv[0]);
        return 2;
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    mode = !strcmp(argv[3], "handshake") ? M_HANDSHAKE
         : !strcmp(argv[3], "tls-req")   ? M_TLSREQ
         : !strcmp(argv[3], "plain-req") ? M_PLAINREQ
         : !strcmp(argv[3], "plain-conn") ? M_PLAINCONN
         : -1;
    if (mode < 0) { fprintf(stderr, "unknown mode %s\n", argv[3]); return 2; }
    int per_conn = mode == M_HANDSHAKE || mode == M_PLAINCONN;
    conc = atoi(argv[4]);
    double seconds = atof(argv[5]);
    name = argv[7];
    reqlen = snprintf(request, sizeof(request), "GET VAR %s ups.status\n", argv[8]);

    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(ctx, argv[6], NULL) != 1) {
        ERR_print_errors_fp(stderr); return 2;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* full handshakes only */

    lat = malloc(sizeof(double) * maxlat);
    ep = epoll_create1(0);
    conn_t *conns = calloc(conc, sizeof(conn_t));
    double t_start = now();
    t_end = per_conn ? t_start + seconds : t_start + 3600;
    for (int i = 0; i < conc; i++) start(&conns[i]);

    struct epoll_event evs[256];
    for (;;) {
        if (!per_conn && t_measure < 0 && established_count >= conc) {
            t_measure = now();
            t_end = t_measure + seconds;
        }
        double t = now();
        if (t > t_end + 2) break;
        int alive = 0;
        for (int i = 0; i < conc; i++) alive += conns[i].fd >= 0;
        if (!alive) break;
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) step((conn_t *)evs[i].data.ptr);
    }
    double elapsed = seconds;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    double p50 = 0, p99 = 0;
    if (nlat) {
        qsort(lat, nlat, sizeof(double), cmp);
        p50 = lat[nlat / 2] * 1000;
        p99 = lat[(long)(nlat * 0.99)] * 1000;
    }
    printf("mode=%s conc=%d completed=%ld errors=%ld seconds=%.3f rate=%.1f p50_ms=%.2f p99_ms=%.2f client_cpu=%.3f\n",
           argv[3], conc, completed, errors, elapsed, completed / elapsed, p50, p99, cpu);
    return 0;
}
