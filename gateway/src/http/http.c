/*
 * http.c: the operator's HTTP endpoint (http.h) on libmicrohttpd: the listener, the token, the
 * limits, and which page each path gets.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"
#include "http.h"
#include "http_render.h"
#include "log.h"
#include "private_file.h"

#define TOKEN_MAX 256
#define TOKEN_MIN 16
#define RATE_SLOTS 256            /* per-address rate buckets (hashed; collisions share) */
#define REQUEST_MEMORY (16 * 1024) /* per connection: a request's headers beyond it get 431 */
#define IDLE_TIMEOUT_S 10          /* a client that sends nothing for this long is closed */

struct rate_slot {
    uint32_t addr_hash;
    double tokens;
    uint64_t last_ms;
};

struct http_server {
    struct gateway *gw;
    struct MHD_Daemon *d;
    char token[TOKEN_MAX + 1];   /* the bearer token (the MHD thread reads it; reload swaps) */
    pthread_mutex_t token_lock;
    struct rate_slot rate[RATE_SLOTS]; /* the MHD thread's alone */
    struct log_limit refused_log;
};

/* Reads the token: the file must be the gateway's alone (0600) and hold one line of at least
 * TOKEN_MIN printable characters. */
static int read_token(const char *path, char *out, char *err, size_t errlen)
{
    if (private_file_check(path, "http token_file", err, errlen) != 0)
        return -1;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "http token_file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[TOKEN_MAX + 2] = "";
    bool got = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    size_t n = got ? strcspn(line, "\r\n") : 0;
    line[n] = '\0';
    bool printable = n > 0;
    for (size_t i = 0; i < n; i++)
        printable &= line[i] > ' ' && line[i] < 0x7f;
    if (n < TOKEN_MIN || n > TOKEN_MAX || !printable) {
        snprintf(err, errlen, "http token_file %s: must hold one token of %d to %d printable "
                 "characters (e.g. openssl rand -hex 32)", path, TOKEN_MIN, TOKEN_MAX);
        OPENSSL_cleanse(line, sizeof(line));
        return -1;
    }
    memcpy(out, line, n + 1);
    OPENSSL_cleanse(line, sizeof(line));
    return 0;
}

static uint32_t addr_hash(const struct sockaddr *sa)
{
    const uint8_t *p = NULL;
    size_t n = 0;
    if (sa && sa->sa_family == AF_INET) {
        p = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        n = 4;
    } else if (sa && sa->sa_family == AF_INET6) {
        p = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        n = 16;
    }
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* A token bucket per source address: requests_per_second, bursts of as many. */
static bool rate_allows(struct http_server *s, const struct sockaddr *sa)
{
    uint32_t h = addr_hash(sa);
    struct rate_slot *r = &s->rate[h % RATE_SLOTS];
    uint64_t now = clock_mono_ms();
    double per_s = s->gw->cfg.http_requests_per_second;
    if (r->addr_hash != h || r->last_ms == 0) {
        r->addr_hash = h;
        r->tokens = per_s;
    } else {
        r->tokens += (double)(now - r->last_ms) * per_s / 1000.0;
        if (r->tokens > per_s)
            r->tokens = per_s;
    }
    r->last_ms = now;
    if (r->tokens < 1.0)
        return false;
    r->tokens -= 1.0;
    return true;
}

static bool token_ok(struct http_server *s, struct MHD_Connection *conn)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return false;
    const char *given = auth + 7;
    pthread_mutex_lock(&s->token_lock);
    size_t n = strlen(s->token);
    bool ok = strlen(given) == n && CRYPTO_memcmp(given, s->token, n) == 0;
    pthread_mutex_unlock(&s->token_lock);
    return ok;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type,
                             struct http_buf *b)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(b->len, b->p ? b->p : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (strncmp(type, "text/html", 9) == 0) {
        /* the dashboard loads nothing from elsewhere and talks only to this endpoint */
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'none'; script-src 'unsafe-inline'; "
                                "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'");
        MHD_add_response_header(r, "X-Frame-Options", "DENY");
        MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    }
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"psagw\"");
    if (status == MHD_HTTP_TOO_MANY_REQUESTS)
        MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                  ...) __attribute__((format(printf, 3, 4)));
static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                  ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    struct http_buf b = {.p = text, .len = strlen(text)};
    return reply(conn, status, "application/json", &b);
}

static const char *param_of(void *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
}

/* the dashboard page (dashboard.html, embedded by gateway/embed.cmake) */
extern const unsigned char http_dashboard_html[];
extern const unsigned long http_dashboard_html_len;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **req)
{
    (void)version;
    (void)upload_data;
    struct http_server *s = cls;
    struct gateway *gw = s->gw;
    if (*req == NULL) { /* the headers are in: answer on the next call */
        *req = s;
        return MHD_YES;
    }
    if (*upload_size) /* a body: nothing here takes one */
        return reply_json(conn, 413, "{\"error\":\"no body expected\"}");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *peer = ci ? ci->client_addr : NULL;
    if (!rate_allows(s, peer))
        return reply_json(conn, MHD_HTTP_TOO_MANY_REQUESTS, "{\"error\":\"too many requests\"}");
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply_json(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "{\"error\":\"GET only\"}");
    if (strcmp(url, "/") == 0) {
        /* the dashboard: a static page with no data in it (its calls to /api and /metrics
         * carry the token, which it takes from the address's #fragment) */
        struct http_buf page = {.p = (char *)http_dashboard_html, .len = http_dashboard_html_len};
        return reply(conn, MHD_HTTP_OK, "text/html; charset=utf-8", &page);
    }
    if (strcmp(url, "/healthz") == 0)
        return reply_json(conn, MHD_HTTP_OK,
                          "{\"status\":\"ok\",\"version\":\"%s\",\"uptime_s\":%llu}",
                          PSAGW_VERSION,
                          (unsigned long long)((clock_mono_ms() - gw->started_ms) / 1000));
    if (!token_ok(s, conn)) {
        char host[INET6_ADDRSTRLEN] = "?";
        if (peer && peer->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, host,
                      sizeof(host));
        else if (peer && peer->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, host,
                      sizeof(host));
        gw->metrics.http_unauthorized++;
        LOG_LIMITED(&s->refused_log, LOG_WARN, "http_unauthorized", "peer=%s path=%.64s", host,
                    url);
        return reply_json(conn, MHD_HTTP_UNAUTHORIZED,
                          "{\"error\":\"a bearer token is needed (Authorization: Bearer ...)\"}");
    }
    gw->metrics.http_requests++;
    struct http_buf b = {0};
    unsigned status;
    const char *type = "application/json";
    if (strcmp(url, "/metrics") == 0) {
        http_metrics_render(gw, &b);
        status = MHD_HTTP_OK;
        type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (strcmp(url, "/readyz") == 0) {
        status = (unsigned)http_ready_render(gw, &b);
    } else if (strncmp(url, "/api/", 5) == 0) {
        status = (unsigned)http_api_render(gw, url + 4, param_of, conn, &b);
    } else {
        http_buf_printf(&b, "{\"error\":\"no such page\"}");
        status = MHD_HTTP_NOT_FOUND;
    }
    if (b.oom) {
        http_buf_free(&b);
        return reply_json(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "{\"error\":\"out of memory\"}");
    }
    enum MHD_Result rc = reply(conn, status, type, &b);
    http_buf_free(&b);
    return rc;
}

int http_parse_address(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *err,
                       size_t errlen)
{
    char host[128];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host))
        goto bad;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        goto bad;
    memset(ss, 0, sizeof(*ss));
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            goto bad;
        *len = sizeof(*a);
        return 0;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        goto bad;
    *len = sizeof(*a);
    return 0;
bad:
    snprintf(err, errlen, "http address '%s': must be IPv4:PORT or [IPv6]:PORT", spec);
    return -1;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    static struct log_limit limit;
    char text[256];
    vsnprintf(text, sizeof(text), fmt, ap);
    text[strcspn(text, "\n")] = '\0';
    LOG_LIMITED(&limit, LOG_DEBUG, "http_library", "detail=\"%s\"", text);
}

int http_start(struct gateway *gw, char *err, size_t errlen)
{
    const struct config *cfg = &gw->cfg;
    if (!cfg->http_listen[0])
        return 0;
    struct http_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->gw = gw;
    pthread_mutex_init(&s->token_lock, NULL);
    struct sockaddr_storage ss;
    socklen_t ss_len;
    if (http_parse_address(cfg->http_listen, &ss, &ss_len, err, errlen) != 0 ||
        read_token(cfg->http_token_file, s->token, err, errlen) != 0) {
        pthread_mutex_destroy(&s->token_lock);
        free(s);
        return -1;
    }
    gw->http = s;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                            (unsigned)cfg->http_max_connections_per_address,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)REQUEST_MEMORY,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errlen, "http listen %s: cannot listen there (in use, or not this host's)",
                 cfg->http_listen);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    log_event(LOG_INFO, "http_listening", "address=%s port=%u max_connections=%u "
              "per_address=%u requests_per_second=%u", cfg->http_listen,
              di ? (unsigned)di->port : 0, cfg->http_max_connections,
              cfg->http_max_connections_per_address, cfg->http_requests_per_second);
    return 0;
}

void http_reload(struct gateway *gw)
{
    struct http_server *s = gw->http;
    if (!s)
        return;
    char token[TOKEN_MAX + 1], err[512];
    if (read_token(gw->cfg.http_token_file, token, err, sizeof(err)) != 0) {
        log_event(LOG_ERROR, "http_reload_failed", "detail=\"%s\" action=kept_old_token", err);
        return;
    }
    pthread_mutex_lock(&s->token_lock);
    memcpy(s->token, token, sizeof(token));
    pthread_mutex_unlock(&s->token_lock);
    OPENSSL_cleanse(token, sizeof(token));
}

void http_stop(struct gateway *gw)
{
    struct http_server *s = gw->http;
    if (!s)
        return;
    if (s->d)
        MHD_stop_daemon(s->d);
    OPENSSL_cleanse(s->token, sizeof(s->token));
    pthread_mutex_destroy(&s->token_lock);
    free(s);
    gw->http = NULL;
}
