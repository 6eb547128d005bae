/*
 * Written by fcgi-testkit: a responder on the reference FastCGI C library (libfcgi,
 * fcgiapp.h) serving the test routes. See the documentation of fcgi_testkit::libfcgi.
 *
 * Usage: libfcgi_responder SOCKET DIR THREADS
 *
 * Listens on the unix socket SOCKET with THREADS threads, each accepting connections
 * and serving their requests one at a time (FCGX_Accept_r). Exits, removing SOCKET, the
 * log and DIR, when its standard input reaches end-of-file.
 */
#include <fcgiapp.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int listen_fd;
static const char *socket_path;
static const char *dir_path;

/* Formats with the C library's printf: libfcgi's own FCGX_FPrintF knows no `%zu`. */
static void put_format(FCGX_Stream *out, const char *format, ...)
{
    char text[512];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(text, sizeof text, format, args);
    va_end(args);
    if (n > 0) {
        FCGX_PutStr(text, n < (int)sizeof text ? n : (int)sizeof text - 1, out);
    }
}

/* The value of NAME in the query string QUERY (`a=1&b=2`), as a number; 0 when it is
 * missing or not a number. */
static unsigned long long query_number(const char *query, const char *name)
{
    size_t len = strlen(name);
    const char *p = query;
    while (p != NULL && *p != '\0') {
        if (strncmp(p, name, len) == 0 && p[len] == '=') {
            char *end;
            unsigned long long n = strtoull(p + len + 1, &end, 10);
            return (*end == '\0' || *end == '&') ? n : 0;
        }
        p = strchr(p, '&');
        if (p != NULL) {
            p++;
        }
    }
    return 0;
}

/* The route: the last segment of the path of REQUEST_URI (else SCRIPT_NAME), without
 * its query and extension. */
static void route_of(FCGX_ParamArray envp, char *out, size_t size)
{
    const char *uri = FCGX_GetParam("REQUEST_URI", envp);
    if (uri == NULL || *uri == '\0') {
        uri = FCGX_GetParam("SCRIPT_NAME", envp);
    }
    if (uri == NULL) {
        uri = "";
    }
    size_t path_len = strcspn(uri, "?");
    const char *start = uri;
    for (size_t i = 0; i < path_len; i++) {
        if (uri[i] == '/') {
            start = uri + i + 1;
        }
    }
    size_t len = (size_t)(uri + path_len - start);
    size_t dot = strcspn(start, ".?");
    if (dot < len) {
        len = dot;
    }
    if (len >= size) {
        len = size - 1;
    }
    memcpy(out, start, len);
    out[len] = '\0';
}

/* Line L of the large body: L in 15 lower-case hex digits, then a newline. */
static void large_line(unsigned long long line, char out[16])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 14; i >= 0; i--) {
        out[i] = hex[line & 15];
        line >>= 4;
    }
    out[15] = '\n';
}

static void serve_large(FCGX_Stream *out, unsigned long long total)
{
    static const size_t piece = 65536; /* a multiple of 16: pieces start on a line */
    char *buf = malloc(piece);
    if (buf == NULL) {
        return;
    }
    unsigned long long line = 0, sent = 0;
    while (sent < total) {
        size_t size = total - sent < piece ? (size_t)(total - sent) : piece;
        for (size_t off = 0; off < size; off += 16) {
            char text[16];
            large_line(line++, text);
            memcpy(buf + off, text, size - off < 16 ? size - off : 16);
        }
        if (FCGX_PutStr(buf, (int)size, out) < 0) {
            break;
        }
        sent += size;
    }
    free(buf);
}

static void serve_echo(FCGX_Stream *in, FCGX_Stream *out, FCGX_ParamArray envp)
{
    const char *text = FCGX_GetParam("CONTENT_LENGTH", envp);
    size_t want = text != NULL ? (size_t)strtoull(text, NULL, 10) : 0;
    char *body = malloc(want > 0 ? want : 1);
    size_t got = 0;
    if (body == NULL) {
        FCGX_PutS("Status: 500 Internal Server Error\r\n\r\n", out);
        return;
    }
    while (got < want) {
        size_t chunk = want - got < 65536 ? want - got : 65536;
        int n = FCGX_GetStr(body + got, (int)chunk, in);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    put_format(out,
                 "Status: 200 OK\r\n"
                 "Content-Type: application/octet-stream\r\n"
                 "X-Body-Length: %zu\r\n"
                 "\r\n",
                 got);
    FCGX_PutStr(body, (int)got, out);
    free(body);
}

static void serve(FCGX_Request *req)
{
    char route[64];
    route_of(req->envp, route, sizeof route);
    const char *query = FCGX_GetParam("QUERY_STRING", req->envp);
    if (query == NULL) {
        query = "";
    }
    FCGX_Stream *in = req->in, *out = req->out, *err = req->err;

    if (strcmp(route, "hello") == 0) {
        FCGX_PutS("Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nHello, World!", out);
    } else if (strcmp(route, "echo") == 0) {
        serve_echo(in, out, req->envp);
    } else if (strcmp(route, "cookies") == 0) {
        FCGX_PutS("Status: 404 Not Found\r\n"
                  "Set-Cookie: a=1\r\n"
                  "Set-Cookie: b=2\r\n"
                  "Set-Cookie: c=3\r\n"
                  "Content-Type: text/plain\r\n"
                  "\r\n"
                  "not here",
                  out);
    } else if (strcmp(route, "stderr") == 0) {
        /* Each flush is one record: STDERR, STDOUT, STDERR, then STDOUT at the end. */
        FCGX_PutS("first message\n", err);
        FCGX_FFlush(err);
        FCGX_PutS("Status: 200 OK\r\nContent-Type: text/plain\r\n\r\none\n", out);
        FCGX_FFlush(out);
        FCGX_PutS("second message\n", err);
        FCGX_FFlush(err);
        FCGX_PutS("two\n", out);
    } else if (strcmp(route, "large") == 0) {
        unsigned long long total = query_number(query, "bytes");
        put_format(out,
                     "Status: 200 OK\r\n"
                     "Content-Type: application/octet-stream\r\n"
                     "X-Body-Length: %llu\r\n"
                     "\r\n",
                     total);
        serve_large(out, total);
    } else if (strcmp(route, "sleep") == 0) {
        unsigned long long ms = query_number(query, "ms");
        struct timespec t = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        while (nanosleep(&t, &t) != 0 && errno == EINTR) {
        }
        put_format(out, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nslept %llu", ms);
    } else if (strcmp(route, "status") == 0) {
        unsigned long long code = query_number(query, "code");
        put_format(out, "Status: %03llu Status\r\nContent-Type: text/plain\r\n\r\nstatus %llu",
                     code, code);
    } else {
        FCGX_PutS("Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnot found", out);
    }

    /* Read the rest of STDIN, its empty end record included: libfcgi drops what is
     * left in a request's input buffer, but a STDIN record still in the socket when the
     * next FCGX_Accept_r reads would be a protocol error that closes a kept
     * connection. */
    char rest[4096];
    while (FCGX_GetStr(rest, sizeof rest, in) > 0) {
    }
}

static void *worker(void *unused)
{
    (void)unused;
    FCGX_Request req;
    if (FCGX_InitRequest(&req, listen_fd, 0) != 0) {
        fprintf(stderr, "FCGX_InitRequest failed\n");
        return NULL;
    }
    while (FCGX_Accept_r(&req) >= 0) {
        serve(&req);
        FCGX_Finish_r(&req);
    }
    return NULL;
}

/* The test process holds the other end of standard input: its close (drop, exit, kill)
 * stops the server. */
static void *watch_stdin(void *unused)
{
    (void)unused;
    char buf[256];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR)) {
            break;
        }
    }
    char log_path[4096];
    snprintf(log_path, sizeof log_path, "%s/libfcgi.log", dir_path);
    unlink(socket_path);
    unlink(log_path);
    rmdir(dir_path);
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s SOCKET DIR THREADS\n", argv[0]);
        return 2;
    }
    socket_path = argv[1];
    dir_path = argv[2];
    int threads = atoi(argv[3]);
    if (threads < 1) {
        threads = 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (FCGX_Init() != 0) {
        fprintf(stderr, "FCGX_Init failed\n");
        return 1;
    }
    listen_fd = FCGX_OpenSocket(socket_path, 128);
    if (listen_fd < 0) {
        fprintf(stderr, "FCGX_OpenSocket(%s) failed\n", socket_path);
        return 1;
    }
    pthread_t watcher;
    pthread_create(&watcher, NULL, watch_stdin, NULL);
    for (int i = 1; i < threads; i++) {
        pthread_t t;
        pthread_create(&t, NULL, worker, NULL);
    }
    printf("fcgi-testkit: libfcgi serving on %s with %d threads\n", socket_path, threads);
    fflush(stdout);
    worker(NULL);
    return 0;
}
