/* prefork_server: a small HTTP server on 127.0.0.1 limited by libaisoule_ratelimit.
 *
 *   prefork_server [-p PORT] [-w WORKERS] [-c CONFIG.json] [-s x|ietf|both] [-S PATH]
 *
 * The parent binds the socket, forks WORKERS processes that each accept() and answer one
 * request a connection, and forwards SIGTERM/SIGINT to them. Routes: /v1/status,
 * /v1/messages, /v1/media (anything else: 404). The API key is the `Authorization:
 * Bearer <key>` header; a request without one gets 401. Every limited answer carries the
 * documented rate-limit headers; a denied one is the library's 429. Every answer says
 * which worker gave it (`X-Worker: <pid>`).
 *
 * -S PATH: every worker opens the shared-memory segment at PATH (asrl_limiter_open_shared;
 * created by the parent if missing, e.g. /dev/shm/myapi-ratelimit), so all workers, and
 * any other process opening PATH with the same config, count in one table: a key gets
 * exactly its limits however many workers answer it. The segment outlives the server
 * (`rm PATH` to start afresh). Without -S each worker has its own in-process table and a
 * key may get up to WORKERS times its limits.
 *
 * PORT 0 picks a free port; the server prints "listening on 127.0.0.1:PORT" once it
 * accepts connections. */
#define _POSIX_C_SOURCE 200809L

#include "aisoule_ratelimit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORKERS 64
#define REQ_MAX 8192

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static int send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Sends status line, extra headers (already "Name: value\r\n" lines), and a JSON body. */
static void respond_as(int fd, int status, const char *reason, const char *content_type,
                       const char *headers, size_t headers_len, const char *body,
                       size_t body_len) {
  char head[512];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\nX-Worker: %d\r\n",
                   status, reason, content_type, body_len, (int)getpid());
  if (n < 0 || (size_t)n >= sizeof head) return;
  if (send_all(fd, head, (size_t)n) || send_all(fd, headers, headers_len) ||
      send_all(fd, "\r\n", 2) || send_all(fd, body, body_len))
    return;
}

static void respond(int fd, int status, const char *reason, const char *headers,
                    size_t headers_len, const char *body, size_t body_len) {
  respond_as(fd, status, reason, "application/json", headers, headers_len, body, body_len);
}

/* The value of header `name` (case-insensitive) in the request head, or NULL. */
static const char *header_value(const char *head, const char *name, size_t *len) {
  size_t nlen = strlen(name);
  const char *p = strstr(head, "\r\n");
  while (p && p[2] != '\r' && p[2] != '\0') {
    const char *line = p + 2;
    const char *end = strstr(line, "\r\n");
    if (!end) break;
    if ((size_t)(end - line) > nlen && line[nlen] == ':' &&
        strncasecmp(line, name, nlen) == 0) {
      const char *v = line + nlen + 1;
      while (v < end && (*v == ' ' || *v == '\t')) v++;
      *len = (size_t)(end - v);
      while (*len > 0 && (v[*len - 1] == ' ' || v[*len - 1] == '\t')) (*len)--;
      return v;
    }
    p = end;
  }
  return NULL;
}

/* Whether `path` is `prefix` or `prefix` followed by '/' or '?'. */
static int under(const char *path, size_t path_len, const char *prefix) {
  size_t n = strlen(prefix);
  return path_len >= n && memcmp(path, prefix, n) == 0 &&
         (path_len == n || path[n] == '/' || path[n] == '?');
}

static void serve(int fd, const asrl_limiter *limiter) {
  char req[REQ_MAX + 1];
  size_t got = 0;
  const char *sp1, *sp2, *auth, *key;
  size_t auth_len = 0, key_len, path_len;
  asrl_decision d;
  asrl_result rc;
  char headers[1024], body[512];
  size_t headers_len = 0, body_len = 0;

  /* Read the request head (no body is expected). */
  while (got < REQ_MAX) {
    ssize_t r = recv(fd, req + got, REQ_MAX - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    got += (size_t)r;
    req[got] = '\0';
    if (strstr(req, "\r\n\r\n")) break;
  }
  req[got] = '\0';
  sp1 = strchr(req, ' ');
  sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
  if (!sp1 || !sp2 || !strstr(req, "\r\n\r\n")) {
    static const char bad[] = "{\"success\":false,\"error\":{\"code\":\"bad_request\"}}";
    respond(fd, 400, "Bad Request", "", 0, bad, sizeof bad - 1);
    return;
  }
  path_len = (size_t)(sp2 - sp1 - 1);

  auth = header_value(req, "Authorization", &auth_len);
  if (!auth || auth_len <= 7 || strncasecmp(auth, "Bearer ", 7) != 0) {
    static const char unauth[] =
        "{\"success\":false,\"error\":{\"code\":\"missing_api_key\","
        "\"message\":\"Send Authorization: Bearer <key>.\"}}";
    static const char www[] = "WWW-Authenticate: Bearer\r\n";
    respond(fd, 401, "Unauthorized", www, sizeof www - 1, unauth, sizeof unauth - 1);
    return;
  }
  key = auth + 7;
  key_len = auth_len - 7;

  rc = asrl_check(limiter, (const uint8_t *)key, key_len, sp1 + 1, path_len, 1,
                  asrl_monotonic_ns(), asrl_wall_ns(), &d);
  if (rc != ASRL_RESULT_OK) {
    /* A path that is not UTF-8, say: refuse it rather than let it through unlimited. */
    static const char bad[] = "{\"success\":false,\"error\":{\"code\":\"bad_request\"}}";
    respond(fd, 400, "Bad Request", "", 0, bad, sizeof bad - 1);
    return;
  }
  if (asrl_decision_write_headers(limiter, &d, headers, sizeof headers, &headers_len) != ASRL_RESULT_OK)
    headers_len = 0;
  if (!d.allowed) {
    if (asrl_decision_write_body(limiter, &d, body, sizeof body, &body_len) != ASRL_RESULT_OK)
      body_len = 0;
    /* Headers, body and its Content-Type: all the library's text. */
    respond_as(fd, 429, "Too Many Requests", asrl_body_content_type(), headers, headers_len,
               body, body_len);
    return;
  }
  if (under(sp1 + 1, path_len, "/v1/status")) {
    static const char ok[] = "{\"status\":\"ok\"}";
    respond(fd, 200, "OK", headers, headers_len, ok, sizeof ok - 1);
  } else if (under(sp1 + 1, path_len, "/v1/messages")) {
    static const char ok[] = "{\"success\":true,\"messages\":[]}";
    respond(fd, 200, "OK", headers, headers_len, ok, sizeof ok - 1);
  } else if (under(sp1 + 1, path_len, "/v1/media")) {
    static const char ok[] = "{\"success\":true,\"media\":[]}";
    respond(fd, 200, "OK", headers, headers_len, ok, sizeof ok - 1);
  } else {
    static const char nf[] = "{\"success\":false,\"error\":{\"code\":\"not_found\"}}";
    respond(fd, 404, "Not Found", headers, headers_len, nf, sizeof nf - 1);
  }
}

/* A limiter over the segment at `shared` (every worker's counts in one table), or with a
 * table of its own when `shared` is NULL. On failure prints why and returns NULL. */
static asrl_limiter *open_limiter(const char *shared, const char *config, size_t config_len,
                                  const asrl_options *opts, const char *who) {
  asrl_limiter *limiter = NULL;
  asrl_result rc = shared ? asrl_limiter_open_shared(shared, strlen(shared), config, config_len, opts, &limiter)
                          : asrl_limiter_new(config, config_len, opts, &limiter);
  if (rc != ASRL_RESULT_OK) {
    char msg[1024];
    size_t n = 0;
    /* The reason, naming the field or the difference; else the result's text. */
    if (!(shared ? asrl_shared_error(msg, sizeof msg - 1, &n) == ASRL_RESULT_OK && n > 0
                 : rc == ASRL_RESULT_INVALID_CONFIG &&
                       asrl_config_error(config, config_len, msg, sizeof msg - 1, &n) == ASRL_RESULT_OK))
      asrl_result_message(rc, msg, sizeof msg - 1, &n);
    msg[n] = '\0';
    fprintf(stderr, "%s: %s\n", who, msg);
    return NULL;
  }
  return limiter;
}

static int worker(int listener, const char *shared, const char *config, size_t config_len,
                  const asrl_options *opts) {
  /* Each worker opens the segment by its path, as any other process would. */
  asrl_limiter *limiter = open_limiter(shared, config, config_len, opts, "worker");
  if (!limiter) return 1;
  while (!g_stop) {
    struct timeval tv;
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR) continue;
      perror("accept");
      break;
    }
    tv.tv_sec = 5;
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    serve(fd, limiter);
    close(fd);
  }
  asrl_limiter_free(limiter);
  return 0;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t cap = 0, n = 0;
  if (!f) return NULL;
  for (;;) {
    size_t r;
    if (n == cap) {
      char *grown = (char *)realloc(buf, cap ? cap * 2 : 4096);
      if (!grown) break;
      buf = grown;
      cap = cap ? cap * 2 : 4096;
    }
    r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  fclose(f);
  *len = n;
  return buf;
}

int main(int argc, char **argv) {
  int port = 8080, workers = 2, opt, listener, one = 1, i, status = 0;
  const char *config_path = NULL, *shared = NULL;
  char *config = NULL;
  size_t config_len = 0;
  asrl_options opts;
  asrl_limiter *probe = NULL;
  struct sockaddr_in addr;
  socklen_t addr_len = sizeof addr;
  pid_t pids[MAX_WORKERS];
  struct sigaction sa;

  memset(&opts, 0, sizeof opts); /* the defaults; seed from the OS */
  while ((opt = getopt(argc, argv, "p:w:c:s:S:")) != -1) {
    switch (opt) {
      case 'p': port = atoi(optarg); break;
      case 'w': workers = atoi(optarg); break;
      case 'c': config_path = optarg; break;
      case 's':
        opts.header_style = strcmp(optarg, "ietf") == 0   ? ASRL_HEADER_STYLE_IETF
                            : strcmp(optarg, "both") == 0 ? ASRL_HEADER_STYLE_BOTH
                                                          : ASRL_HEADER_STYLE_X_RATE_LIMIT;
        break;
      case 'S': shared = optarg; break;
      default:
        fprintf(stderr, "usage: %s [-p PORT] [-w WORKERS] [-c CONFIG.json] [-s x|ietf|both] [-S PATH]\n",
                argv[0]);
        return 2;
    }
  }
  if (workers < 1 || workers > MAX_WORKERS || port < 0 || port > 65535) {
    fprintf(stderr, "bad -w or -p\n");
    return 2;
  }
  if (config_path) {
    config = read_file(config_path, &config_len);
    if (!config) {
      perror(config_path);
      return 2;
    }
  }
  /* Check the config (and the segment, creating it) once in the parent, with the error's
   * text: a stale segment made for another config is refused here, by name. */
  probe = open_limiter(shared, config, config_len, &opts, shared ? shared : "config");
  if (!probe) return 2;
  asrl_limiter_free(probe);

  listener = socket(AF_INET, SOCK_STREAM, 0);
  if (listener < 0) {
    perror("socket");
    return 1;
  }
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons((uint16_t)port);
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 128) < 0 ||
      getsockname(listener, (struct sockaddr *)&addr, &addr_len) < 0) {
    perror("bind/listen");
    return 1;
  }

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  for (i = 0; i < workers; i++) {
    pids[i] = fork();
    if (pids[i] < 0) {
      perror("fork");
      return 1;
    }
    if (pids[i] == 0) {
      int code = worker(listener, shared, config, config_len, &opts);
      free(config);
      close(listener);
      _exit(code);
    }
  }
  if (shared)
    printf("listening on 127.0.0.1:%d (%d workers, one table in %s)\n", ntohs(addr.sin_port), workers, shared);
  else
    printf("listening on 127.0.0.1:%d (%d workers, a table each)\n", ntohs(addr.sin_port), workers);
  fflush(stdout);

  /* Wait for a signal or a worker's exit, then stop the others. */
  while (!g_stop) {
    pid_t done = waitpid(-1, &status, 0);
    if (done > 0) {
      fprintf(stderr, "worker %d exited\n", (int)done);
      break;
    }
    if (done < 0 && errno != EINTR) break;
  }
  for (i = 0; i < workers; i++) kill(pids[i], SIGTERM);
  while (waitpid(-1, &status, 0) > 0 || errno == EINTR) {
  }
  free(config);
  close(listener);
  return 0;
}
