/* Tests of the C surface of libaisoule_ratelimit, from C (c99) and C++ (c++17).
 * Built with -DASRL_FEATURE_TEST_PANIC against a library built with the `test-panic`
 * feature. Ends with the line "N passed, N failed". */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS on glibc */

#include "aisoule_ratelimit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if !defined(MAP_ANONYMOUS) && defined(MAP_ANON)
#define MAP_ANONYMOUS MAP_ANON
#endif

static int g_failed_checks;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      g_failed_checks++;                                                       \
    }                                                                          \
  } while (0)

#define CHECK_RC(expr, want)                                                   \
  do {                                                                         \
    asrl_result rc_ = (expr);                                                  \
    if (rc_ != (asrl_result)(want)) {                                          \
      fprintf(stderr, "  %s:%d: %s returned %u, expected %s (%u)\n", __FILE__, \
              __LINE__, #expr, (unsigned)rc_, #want, (unsigned)(want));        \
      g_failed_checks++;                                                       \
    }                                                                          \
  } while (0)

/* One fixed instant (Unix ms 1780423178274) as both clocks. */
static const uint64_t T0 = UINT64_C(1780423178274000000);

static const char CUSTOM[] =
    "{\"policies\": {"
    "\"free\": [{\"algorithm\": \"window\", \"limit\": 3, \"period_ms\": 60000}],"
    "\"burst\": [{\"algorithm\": \"gcra\", \"limit\": 200, \"period_ms\": 3600000}],"
    "\"window\": [{\"algorithm\": \"window\", \"limit\": 150, \"period_ms\": 3600000}],"
    "\"both\": [{\"algorithm\": \"window\", \"limit\": 90, \"period_ms\": 3600000},"
    "           {\"algorithm\": \"gcra\", \"limit\": 70, \"period_ms\": 3600000}]},"
    " \"routes\": [{\"prefix\": \"/free\", \"policy\": \"free\"}],"
    " \"default_policy\": \"free\", \"capacity\": 4096}";

static asrl_options seeded(uint64_t capacity) {
  asrl_options o;
  memset(&o, 0, sizeof o);
  o.capacity = capacity;
  o.seed[0] = 11;
  o.seed[1] = 13;
  return o;
}

static asrl_limiter *make(const char *config, uint64_t capacity) {
  asrl_limiter *l = NULL;
  asrl_options o = seeded(capacity);
  asrl_result rc =
      asrl_limiter_new(config, config ? strlen(config) : 0, &o, &l);
  if (rc != ASRL_RESULT_OK || l == NULL) {
    fprintf(stderr, "asrl_limiter_new failed: %u\n", (unsigned)rc);
    exit(1);
  }
  return l;
}

static asrl_result check(const asrl_limiter *l, const char *key,
                         const char *route, uint64_t cost, uint64_t now,
                         asrl_decision *d) {
  return asrl_check(l, (const uint8_t *)key, strlen(key), route, strlen(route),
                    cost, now, now, d);
}

static asrl_result peek(const asrl_limiter *l, const char *key,
                        const char *route, asrl_decision *d) {
  return asrl_peek(l, (const uint8_t *)key, strlen(key), route, strlen(route),
                   1, T0, T0, d);
}

/* The text a writer produces, NUL-terminated into `out` (size 1024). */
static size_t headers_of(const asrl_limiter *l, const asrl_decision *d,
                         char *out) {
  size_t n = 0;
  CHECK_RC(asrl_decision_write_headers(l, d, out, 1023, &n), ASRL_RESULT_OK);
  out[n < 1024 ? n : 1023] = '\0';
  return n;
}

/* ---------------------------------------------------------------- tests */

static void test_version(void) {
  char want[64];
  snprintf(want, sizeof want, "%d.%d.%d", ASRL_VERSION_MAJOR,
           ASRL_VERSION_MINOR, ASRL_VERSION_PATCH);
  CHECK(strcmp(asrl_version(), ASRL_VERSION_STRING) == 0);
  CHECK(strncmp(ASRL_VERSION_STRING, want, strlen(want)) == 0);
  CHECK(strcmp(asrl_body_content_type(), "application/json") == 0);
}

static void test_documented_defaults_burst_and_429(void) {
  asrl_limiter *l = make(NULL, 0);
  asrl_decision d;
  char text[1024];
  char want[256];
  const char *name = NULL;
  size_t name_len = 0;
  uint64_t i;
  CHECK(asrl_limiter_capacity(l) == ASRL_DEFAULT_CAPACITY);
  CHECK(asrl_limiter_policy_count(l) == 3);
  for (i = 0; i < 5; i++) {
    CHECK_RC(check(l, "k1", "/v1/messages/42?x=1", 1, T0, &d), ASRL_RESULT_OK);
    CHECK(d.allowed && d.status == 200 && d.limit == 5 && d.remaining == 4 - i);
  }
  CHECK_RC(asrl_limiter_policy_name(l, d.policy, &name, &name_len),
           ASRL_RESULT_OK);
  CHECK(name_len == 9 && memcmp(name, "messaging", 9) == 0);
  headers_of(l, &d, text);
  /* reset: the GCRA backlog of 5 * 200 ms after T0, rounded up to seconds. */
  snprintf(want, sizeof want,
           "X-RateLimit-Limit: 5\r\nX-RateLimit-Remaining: 0\r\n"
           "X-RateLimit-Reset: %llu\r\n",
           (unsigned long long)((T0 + 1000000000u + 999999999u) / 1000000000u));
  CHECK(strcmp(text, want) == 0);

  CHECK_RC(check(l, "k1", "/v1/messages", 1, T0, &d), ASRL_RESULT_OK);
  CHECK(!d.allowed && d.status == 429 && d.retry_after_seconds == 1);
  headers_of(l, &d, text);
  CHECK(strstr(text, "X-RateLimit-Remaining: 0\r\n") != NULL);
  CHECK(strlen(text) > 16 &&
        strcmp(text + strlen(text) - 16, "Retry-After: 1\r\n") == 0);
  {
    size_t n = 0;
    char body[256];
    CHECK_RC(asrl_decision_write_body(l, &d, body, sizeof body, &n),
             ASRL_RESULT_OK);
    CHECK(n == strlen("{\"success\":false,\"error\":{\"code\":\"rate_limit_"
                      "exceeded\",\"message\":\"Too many requests. Please wait "
                      "before retrying.\",\"retry_after_seconds\":1}}"));
    CHECK(memcmp(body,
                 "{\"success\":false,\"error\":{\"code\":\"rate_limit_exceeded\","
                 "\"message\":\"Too many requests. Please wait before "
                 "retrying.\",\"retry_after_seconds\":1}}",
                 n) == 0);
  }
  /* Another key and another class are untouched. */
  CHECK_RC(check(l, "k2", "/v1/messages", 1, T0, &d), ASRL_RESULT_OK);
  CHECK(d.allowed && d.remaining == 4);
  CHECK_RC(check(l, "k1", "/v1/messagesX", 1, T0, &d), ASRL_RESULT_OK);
  CHECK(d.allowed && d.limit == 120 && d.remaining == 119);
  /* 200 ms later one more fits. */
  CHECK_RC(check(l, "k1", "/v1/messages", 1, T0 + 200000000u, &d),
           ASRL_RESULT_OK);
  CHECK(d.allowed);
  asrl_limiter_free(l);
}

static void test_peek_counts_nothing(void) {
  asrl_limiter *l = make(NULL, 1024);
  asrl_decision d;
  int i;
  for (i = 0; i < 3; i++) {
    CHECK_RC(peek(l, "p", "/v1/media", &d), ASRL_RESULT_OK);
    CHECK(d.allowed && d.limit == 30 && d.remaining == 30);
  }
  CHECK_RC(check(l, "p", "/v1/media", 1, T0, &d), ASRL_RESULT_OK);
  CHECK_RC(peek(l, "p", "/v1/media", &d), ASRL_RESULT_OK);
  CHECK(d.remaining == 29);
  asrl_limiter_free(l);
}

static void test_json_config_and_policies(void) {
  asrl_limiter *l = make(CUSTOM, 0);
  asrl_decision d;
  uint32_t idx = 99;
  int i;
  CHECK(asrl_limiter_capacity(l) == 4096);
  CHECK(asrl_limiter_policy_count(l) == 4);
  CHECK_RC(asrl_limiter_policy_index(l, "window", 6, &idx), ASRL_RESULT_OK);
  CHECK(idx == 2);
  for (i = 0; i < 3; i++) {
    CHECK_RC(check(l, "u", "/anything", 1, T0, &d), ASRL_RESULT_OK);
    CHECK(d.allowed);
  }
  CHECK_RC(check(l, "u", "/free/x", 1, T0, &d), ASRL_RESULT_OK);
  CHECK(!d.allowed && d.limit == 3 && d.remaining == 0);
  /* A named policy has its own counters. */
  CHECK_RC(asrl_check_policy(l, (const uint8_t *)"u", 1, "window", 6, 10, T0,
                             T0, &d),
           ASRL_RESULT_OK);
  CHECK(d.allowed && d.policy == 2 && d.limit == 150 && d.remaining == 140);
  CHECK_RC(asrl_peek_policy(l, (const uint8_t *)"u", 1, "window", 6, 1, T0, T0,
                            &d),
           ASRL_RESULT_OK);
  CHECK(d.remaining == 140);
  CHECK_RC(asrl_check_policy(l, (const uint8_t *)"u", 1, "nope", 4, 1, T0, T0,
                             &d),
           ASRL_RESULT_UNKNOWN_POLICY);
  CHECK_RC(asrl_limiter_policy_index(l, "nope", 4, &idx),
           ASRL_RESULT_UNKNOWN_POLICY);
  /* Two rules: the binding one has the fewest remaining. */
  CHECK_RC(asrl_check_policy(l, (const uint8_t *)"u", 1, "both", 4, 1, T0, T0,
                             &d),
           ASRL_RESULT_OK);
  CHECK(d.binding_rule == 1 && d.limit == 70 && d.remaining == 69);
  asrl_limiter_free(l);
}

static void test_config_errors_name_the_field(void) {
  static const char bad_limit[] =
      "{\"policies\": {\"alpha\": [{\"algorithm\": \"window\", \"limit\": 0, "
      "\"period_ms\": 1000}]}}";
  static const char bad_json[] = "{\"policies\": ";
  static const char bad_utf8[] = "{\"default_policy\": \"\xff\"}";
  char msg[256];
  size_t n = 12345;
  asrl_limiter *l = (asrl_limiter *)&n; /* must stay untouched */
  asrl_limiter *const sentinel = l;
  CHECK_RC(asrl_limiter_new(bad_limit, strlen(bad_limit), NULL, &l),
           ASRL_RESULT_INVALID_CONFIG);
  CHECK(l == sentinel);
  CHECK_RC(asrl_config_error(bad_limit, strlen(bad_limit), msg, sizeof msg, &n),
           ASRL_RESULT_OK);
  CHECK(n > 25 && memcmp(msg, "policies.alpha[0].limit: ", 25) == 0);
  CHECK_RC(asrl_limiter_new(bad_json, strlen(bad_json), NULL, &l),
           ASRL_RESULT_INVALID_CONFIG);
  CHECK_RC(asrl_config_error(bad_json, strlen(bad_json), msg, sizeof msg, &n),
           ASRL_RESULT_OK);
  CHECK(n > 0 && strstr(msg, "invalid JSON") != NULL);
  CHECK_RC(asrl_limiter_new(bad_utf8, strlen(bad_utf8), NULL, &l),
           ASRL_RESULT_INVALID_CONFIG);
  CHECK_RC(asrl_config_error(bad_utf8, strlen(bad_utf8), msg, sizeof msg, &n),
           ASRL_RESULT_OK);
  CHECK(n > 0 && memcmp(msg, "config: not UTF-8", 17) == 0);
  CHECK(l == sentinel);
  /* A good config: no text. NULL: the defaults, no text. */
  CHECK_RC(asrl_config_error(CUSTOM, strlen(CUSTOM), msg, sizeof msg, &n),
           ASRL_RESULT_OK);
  CHECK(n == 0);
  CHECK_RC(asrl_config_error(NULL, 0, msg, sizeof msg, &n), ASRL_RESULT_OK);
  CHECK(n == 0);
  /* The error text obeys the size rules too. */
  CHECK_RC(asrl_config_error(bad_limit, strlen(bad_limit), msg, 5, &n),
           ASRL_RESULT_INSUFFICIENT_SIZE);
  CHECK(n > 25);
}

static void test_misuse_changes_nothing(void) {
  asrl_limiter *l = make(NULL, 1024);
  asrl_decision d, before, sentinel;
  const char *route = "/v1/media";
  size_t rl = strlen(route);
  memset(&sentinel, 0xA5, sizeof sentinel);
  CHECK_RC(peek(l, "m", route, &before), ASRL_RESULT_OK);

  d = sentinel;
  CHECK_RC(asrl_check(NULL, (const uint8_t *)"m", 1, route, rl, 1, T0, T0, &d),
           ASRL_RESULT_NULL_PARAMETER);
  CHECK_RC(asrl_check(l, (const uint8_t *)"m", 1, route, rl, 1, T0, T0, NULL),
           ASRL_RESULT_NULL_PARAMETER);
  CHECK_RC(asrl_check(l, NULL, 1, route, rl, 1, T0, T0, &d),
           ASRL_RESULT_NULL_PARAMETER);
  CHECK_RC(asrl_check(l, (const uint8_t *)"m", 1, NULL, 3, 1, T0, T0, &d),
           ASRL_RESULT_NULL_PARAMETER);
  CHECK_RC(asrl_check(l, (const uint8_t *)"m", SIZE_MAX, route, rl, 1, T0, T0,
                      &d),
           ASRL_RESULT_INVALID_PARAMETER);
  CHECK_RC(asrl_check(l, (const uint8_t *)"m", 1, route, SIZE_MAX, 1, T0, T0,
                      &d),
           ASRL_RESULT_INVALID_PARAMETER);
  CHECK_RC(asrl_check(l, (const uint8_t *)"m", 1, "/v1/\xff", 5, 1, T0, T0, &d),
           ASRL_RESULT_INVALID_UTF8);
  /* Past the ASCII fast path: a cut-short character is refused too. */
  CHECK_RC(asrl_check(l, (const uint8_t *)"m", 1, "/v1/caf\xc3", 8, 1, T0, T0, &d),
           ASRL_RESULT_INVALID_UTF8);
  CHECK_RC(asrl_check(l, (const uint8_t *)"m", 1, route, rl, 0, T0, T0, &d),
           ASRL_RESULT_INVALID_COST);
  CHECK_RC(asrl_check(l, (const uint8_t *)"m", 1, route, rl, 31, T0, T0, &d),
           ASRL_RESULT_INVALID_COST);
  CHECK_RC(asrl_check(l, (const uint8_t *)"m", 1, route, rl, UINT64_MAX, T0, T0,
                      &d),
           ASRL_RESULT_INVALID_COST);
  CHECK_RC(asrl_check_policy(l, (const uint8_t *)"m", 1, NULL, 2, 1, T0, T0, &d),
           ASRL_RESULT_NULL_PARAMETER);
  CHECK(memcmp(&d, &sentinel, sizeof d) == 0);
  CHECK_RC(peek(l, "m", route, &d), ASRL_RESULT_OK);
  CHECK(memcmp(&d, &before, sizeof d) == 0);

  /* A route that is UTF-8 but not ASCII is a real path (the default policy's). */
  CHECK_RC(asrl_check(l, (const uint8_t *)"u", 1, "/v1/caf\xc3\xa9", 9, 1, T0, T0,
                      &d),
           ASRL_RESULT_OK);
  CHECK(d.allowed && d.limit == 120 && d.remaining == 119);

  /* Zero lengths are fine: the empty key and the empty route are real values. */
  CHECK_RC(asrl_check(l, NULL, 0, "", 0, 1, T0, T0, &d), ASRL_RESULT_OK);
  CHECK(d.allowed && d.limit == 120 && d.remaining == 119);
  CHECK_RC(asrl_check(l, (const uint8_t *)"", 0, NULL, 0, 1, T0, T0, &d),
           ASRL_RESULT_OK);
  CHECK(d.allowed && d.remaining == 118);

  /* Accessors. */
  {
    const char *name = NULL;
    size_t len = 0;
    uint32_t idx = 0;
    asrl_stats s;
    CHECK(asrl_limiter_capacity(NULL) == 0);
    CHECK(asrl_limiter_policy_count(NULL) == 0);
    CHECK_RC(asrl_limiter_policy_name(l, 3, &name, &len),
             ASRL_RESULT_INVALID_PARAMETER);
    CHECK_RC(asrl_limiter_policy_name(NULL, 0, &name, &len),
             ASRL_RESULT_NULL_PARAMETER);
    CHECK_RC(asrl_limiter_policy_name(l, 0, NULL, &len),
             ASRL_RESULT_NULL_PARAMETER);
    CHECK(name == NULL && len == 0);
    CHECK_RC(asrl_limiter_policy_index(l, "media", 5, NULL),
             ASRL_RESULT_NULL_PARAMETER);
    CHECK_RC(asrl_limiter_policy_index(l, "\xff", 1, &idx),
             ASRL_RESULT_INVALID_UTF8);
    CHECK_RC(asrl_limiter_stats(NULL, &s), ASRL_RESULT_NULL_PARAMETER);
    CHECK_RC(asrl_limiter_stats(l, NULL), ASRL_RESULT_NULL_PARAMETER);
  }

  /* Constructors. */
  {
    asrl_limiter *out = NULL;
    asrl_options o = seeded(0);
    CHECK_RC(asrl_limiter_new(NULL, 0, NULL, NULL), ASRL_RESULT_NULL_PARAMETER);
    CHECK_RC(asrl_limiter_new(NULL, 5, NULL, &out), ASRL_RESULT_NULL_PARAMETER);
    o.full_table_mode = 7;
    CHECK_RC(asrl_limiter_new(NULL, 0, &o, &out), ASRL_RESULT_INVALID_PARAMETER);
    o.full_table_mode = 0;
    o.header_style = 3;
    CHECK_RC(asrl_limiter_new(NULL, 0, &o, &out), ASRL_RESULT_INVALID_PARAMETER);
    o.header_style = 0;
    o.capacity = (UINT64_C(1) << 32) + 1;
    CHECK_RC(asrl_limiter_new(NULL, 0, &o, &out), ASRL_RESULT_INVALID_PARAMETER);
    CHECK(out == NULL);
  }
  asrl_limiter_free(NULL);
  asrl_limiter_free(l);
}

static void test_writers_size_rules(void) {
  asrl_limiter *l = make(NULL, 1024);
  asrl_decision d, bad;
  char buf[1024];
  size_t n = 0, full = 0, needed = 0;
  int i;
  for (i = 0; i < 6; i++) {
    CHECK_RC(check(l, "w", "/v1/messages", 1, T0, &d), ASRL_RESULT_OK);
  }
  CHECK(!d.allowed);
  CHECK_RC(asrl_decision_write_headers(l, &d, buf, sizeof buf, &full),
           ASRL_RESULT_OK);
  /* A size query. */
  CHECK_RC(asrl_decision_write_headers(l, &d, NULL, 0, &needed),
           ASRL_RESULT_INSUFFICIENT_SIZE);
  CHECK(needed == full);
  /* One byte short: the needed length, the buffer untouched. */
  memset(buf, '#', sizeof buf);
  needed = 0;
  CHECK_RC(asrl_decision_write_headers(l, &d, buf, full - 1, &needed),
           ASRL_RESULT_INSUFFICIENT_SIZE);
  CHECK(needed == full);
  for (i = 0; i < (int)sizeof buf; i++) {
    if (buf[i] != '#') {
      CHECK(!"the buffer was written");
      break;
    }
  }
  /* Exactly long enough: no byte past it. */
  CHECK_RC(asrl_decision_write_headers(l, &d, buf, full, &n), ASRL_RESULT_OK);
  CHECK(n == full && buf[full] == '#');
  /* The body the same way. */
  CHECK_RC(asrl_decision_write_body(l, &d, NULL, 0, &full),
           ASRL_RESULT_INSUFFICIENT_SIZE);
  memset(buf, '#', sizeof buf);
  CHECK_RC(asrl_decision_write_body(l, &d, buf, full - 1, &needed),
           ASRL_RESULT_INSUFFICIENT_SIZE);
  CHECK(needed == full && buf[0] == '#');
  CHECK_RC(asrl_decision_write_body(l, &d, buf, full, &n), ASRL_RESULT_OK);
  CHECK(n == full && buf[0] == '{' && buf[full - 1] == '}' && buf[full] == '#');
  /* An allowed decision has no body. */
  CHECK_RC(check(l, "w2", "/v1/messages", 1, T0, &d), ASRL_RESULT_OK);
  CHECK_RC(asrl_decision_write_body(l, &d, NULL, 0, &n), ASRL_RESULT_OK);
  CHECK(n == 0);
  /* Bad arguments. */
  CHECK_RC(asrl_decision_write_headers(l, &d, NULL, 10, &n),
           ASRL_RESULT_NULL_PARAMETER);
  CHECK_RC(asrl_decision_write_headers(l, &d, buf, sizeof buf, NULL),
           ASRL_RESULT_NULL_PARAMETER);
  CHECK_RC(asrl_decision_write_headers(NULL, &d, buf, sizeof buf, &n),
           ASRL_RESULT_NULL_PARAMETER);
  CHECK_RC(asrl_decision_write_headers(l, NULL, buf, sizeof buf, &n),
           ASRL_RESULT_NULL_PARAMETER);
  CHECK_RC(asrl_decision_write_headers(l, &d, buf, SIZE_MAX, &n),
           ASRL_RESULT_INVALID_PARAMETER);
  bad = d;
  bad.policy = 3;
  CHECK_RC(asrl_decision_write_headers(l, &bad, buf, sizeof buf, &n),
           ASRL_RESULT_INVALID_PARAMETER);
  bad = d;
  bad.binding_rule = 2;
  CHECK_RC(asrl_decision_write_body(l, &bad, buf, sizeof buf, &n),
           ASRL_RESULT_INVALID_PARAMETER);
  /* A decision with odd bytes in its bools is read without trouble. */
  bad = d;
  memset(&bad.allowed, 7, 1);
  CHECK_RC(asrl_decision_write_body(l, &bad, buf, sizeof buf, &n),
           ASRL_RESULT_OK);
  CHECK(n == 0);
  asrl_limiter_free(l);
}

static void test_result_messages(void) {
  char buf[256];
  size_t n = 0, needed = 0;
  unsigned r;
  for (r = 0; r <= ASRL_RESULT_SHARED_CORRUPT; r++) {
    CHECK_RC(asrl_result_message(r, buf, sizeof buf, &n), ASRL_RESULT_OK);
    CHECK(n > 0 && n < sizeof buf);
  }
  CHECK_RC(asrl_result_message(ASRL_RESULT_INVALID_COST, buf, sizeof buf, &n),
           ASRL_RESULT_OK);
  CHECK(n > 12 && memcmp(buf, "invalid_cost", 12) == 0);
  CHECK_RC(asrl_result_message(4242, buf, sizeof buf, &n), ASRL_RESULT_OK);
  CHECK(n == strlen("unknown asrl_result") &&
        memcmp(buf, "unknown asrl_result", n) == 0);
  memset(buf, '#', sizeof buf);
  CHECK_RC(asrl_result_message(ASRL_RESULT_PANIC, buf, 3, &needed),
           ASRL_RESULT_INSUFFICIENT_SIZE);
  CHECK(needed > 3 && buf[0] == '#');
  CHECK_RC(asrl_result_message(ASRL_RESULT_OK, buf, sizeof buf, NULL),
           ASRL_RESULT_NULL_PARAMETER);
}

static void test_table_bytes(void) {
  CHECK(asrl_table_bytes(0) == 0);
  CHECK(asrl_table_bytes(1) == 16);
  CHECK(asrl_table_bytes(1000) == 16000);
  if (sizeof(size_t) >= 8) {
    CHECK(asrl_table_bytes(UINT64_C(1) << 32) == (size_t)(UINT64_C(1) << 36));
  }
  CHECK(asrl_table_bytes((UINT64_C(1) << 32) + 1) == 0);
  CHECK(asrl_table_bytes(UINT64_MAX) == 0);
}

#if defined(__GNUC__)
#define ALIGN16 __attribute__((aligned(16)))
#else
#define ALIGN16
#endif
static unsigned char g_static_table[64 * ASRL_CELL_SIZE] ALIGN16;

static void test_caller_memory(void) {
  asrl_limiter *a = NULL, *b = NULL, *out = NULL;
  asrl_options o = seeded(0);
  asrl_decision d;
  size_t bytes = asrl_table_bytes(64);
  void *heap = NULL;
  static const char cap64[] = "{\"capacity\": 64}";
  static const char cap32[] = "{\"capacity\": 32}";
  CHECK(bytes == sizeof g_static_table);
  CHECK(((uintptr_t)g_static_table) % ASRL_TABLE_ALIGN == 0);
  /* Two limiters over one memory (as two processes over one segment) share counts. */
  CHECK_RC(asrl_limiter_new_in(NULL, 0, &o, g_static_table, bytes, &a),
           ASRL_RESULT_OK);
  CHECK_RC(asrl_limiter_new_in(cap64, strlen(cap64), &o, g_static_table, bytes, &b),
           ASRL_RESULT_OK);
  CHECK(asrl_limiter_capacity(a) == 64);
  CHECK_RC(check(a, "s", "/v1/messages", 3, T0, &d), ASRL_RESULT_OK);
  CHECK(d.allowed && d.remaining == 2);
  CHECK_RC(check(b, "s", "/v1/messages", 1, T0, &d), ASRL_RESULT_OK);
  CHECK(d.allowed && d.remaining == 1);
  asrl_limiter_free(a);
  asrl_limiter_free(b);
  /* The memory outlives them: a new limiter sees the counts. */
  CHECK_RC(asrl_limiter_new_in(NULL, 0, &o, g_static_table, bytes, &a),
           ASRL_RESULT_OK);
  CHECK_RC(peek(a, "s", "/v1/messages", &d), ASRL_RESULT_OK);
  CHECK(d.remaining == 1);
  asrl_limiter_free(a);

  /* Misuse. */
  CHECK(posix_memalign(&heap, 64, bytes + 64) == 0);
  memset(heap, 0, bytes + 64);
  CHECK_RC(asrl_limiter_new_in(NULL, 0, &o, (char *)heap + 8, bytes, &out),
           ASRL_RESULT_TABLE_MISALIGNED);
  CHECK_RC(asrl_limiter_new_in(NULL, 0, &o, heap, bytes - 1, &out),
           ASRL_RESULT_TABLE_SIZE);
  CHECK_RC(asrl_limiter_new_in(NULL, 0, &o, heap, 0, &out),
           ASRL_RESULT_TABLE_SIZE);
  CHECK_RC(asrl_limiter_new_in(NULL, 0, &o, heap, SIZE_MAX - 15, &out),
           ASRL_RESULT_TABLE_SIZE);
  CHECK_RC(asrl_limiter_new_in(cap32, strlen(cap32), &o, heap, bytes, &out),
           ASRL_RESULT_TABLE_SIZE);
  o.capacity = 65;
  CHECK_RC(asrl_limiter_new_in(NULL, 0, &o, heap, bytes, &out),
           ASRL_RESULT_TABLE_SIZE);
  o.capacity = 64;
  CHECK_RC(asrl_limiter_new_in(NULL, 0, &o, NULL, bytes, &out),
           ASRL_RESULT_NULL_PARAMETER);
  CHECK_RC(asrl_limiter_new_in(NULL, 0, &o, heap, bytes, NULL),
           ASRL_RESULT_NULL_PARAMETER);
  CHECK(out == NULL);
  CHECK_RC(asrl_limiter_new_in(NULL, 0, &o, heap, bytes, &out), ASRL_RESULT_OK);
  CHECK_RC(check(out, "h", "/", 1, T0, &d), ASRL_RESULT_OK);
  asrl_limiter_free(out);
  free(heap);
}

/* Two processes, one table: a child's checks are seen by the parent. */
static void test_shared_memory_across_fork(void) {
  size_t bytes = asrl_table_bytes(256);
  asrl_options o = seeded(0);
  asrl_limiter *l = NULL;
  asrl_decision d;
  int status = 0;
  pid_t child;
  void *shm = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(shm != MAP_FAILED);
  if (shm == MAP_FAILED) return;
  CHECK_RC(asrl_limiter_new_in(NULL, 0, &o, shm, bytes, &l), ASRL_RESULT_OK);
  CHECK_RC(check(l, "shared", "/v1/messages", 1, T0, &d), ASRL_RESULT_OK);
  fflush(NULL);
  child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    /* The child makes its own limiter over the same segment, with the same seed. */
    asrl_limiter *cl = NULL;
    int ok = asrl_limiter_new_in(NULL, 0, &o, shm, bytes, &cl) == ASRL_RESULT_OK &&
             check(cl, "shared", "/v1/messages", 2, T0, &d) == ASRL_RESULT_OK &&
             d.allowed && d.remaining == 2;
    asrl_limiter_free(cl);
    asrl_limiter_free(l);
    _exit(ok ? 0 : 1);
  }
  CHECK(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK_RC(peek(l, "shared", "/v1/messages", &d), ASRL_RESULT_OK);
  CHECK(d.remaining == 2);
  asrl_limiter_free(l);
  munmap(shm, bytes);
}

/* ------------------------------------------------- shared-memory segments */

/* A directory for this run's segments: under /dev/shm when there is one. Mode 0755 so
 * a process of another user can reach (but not write) what the tests make read-only. */
static char g_dir[256];

static const char *seg_path(const char *name, char *out, size_t n) {
  if (g_dir[0] == '\0') {
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/asrl-c-test-XXXXXX", base);
    if (mkdtemp(g_dir) == NULL || chmod(g_dir, 0755) != 0) {
      perror("mkdtemp");
      exit(1);
    }
  }
  snprintf(out, n, "%s/%s", g_dir, name);
  return out;
}

static asrl_result open_shared(const char *path, const char *config, const asrl_options *o,
                               asrl_limiter **out) {
  return asrl_limiter_open_shared(path, strlen(path), config, config ? strlen(config) : 0, o, out);
}

/* asrl_shared_error's text, NUL-terminated (out: 1024 bytes). */
static const char *shared_error(char *out) {
  size_t n = 0;
  CHECK_RC(asrl_shared_error(out, 1023, &n), ASRL_RESULT_OK);
  out[n < 1024 ? n : 1023] = '\0';
  return out;
}

/* The whole file (malloc'd; NULL if missing), its length in *len. */
static unsigned char *file_bytes(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf;
  long n;
  *len = 0;
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = (unsigned char *)malloc(n > 0 ? (size_t)n : 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (buf) *len = (size_t)n;
  return buf;
}

static int write_file(const char *path, const unsigned char *bytes, size_t len) {
  FILE *f = fopen(path, "wb");
  int ok = f && fwrite(bytes, 1, len, f) == len;
  if (f) fclose(f);
  return ok;
}

/* Whether the file's bytes are still `before`. */
static int unchanged(const char *path, const unsigned char *before, size_t len) {
  size_t n = 0;
  unsigned char *now = file_bytes(path, &n);
  int same = now && n == len && memcmp(now, before, len) == 0;
  free(now);
  return same;
}

/* Entries of the test directory whose name contains `part`. */
static int dir_entries_with(const char *part) {
  DIR *d = opendir(g_dir);
  struct dirent *e;
  int n = 0;
  if (!d) return -1;
  while ((e = readdir(d)) != NULL) n += strstr(e->d_name, part) != NULL;
  closedir(d);
  return n;
}

static void test_shared_segment(void) {
  char path[512], text[1024];
  asrl_limiter *a = NULL, *b = NULL;
  asrl_options o;
  asrl_decision d;
  struct stat st;
  size_t len = 0;
  unsigned char *bytes;
  memset(&o, 0, sizeof o);
  o.capacity = 1024;
  seg_path("basic", path, sizeof path);
  CHECK_RC(open_shared(path, NULL, &o, &a), ASRL_RESULT_OK);
  CHECK(shared_error(text)[0] == '\0');
  CHECK(asrl_limiter_capacity(a) == 1024);
  /* Mode 0600, a 128-byte header and 16 bytes a cell, the magic first. */
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
  CHECK(st.st_size == 128 + 1024 * 16);
  bytes = file_bytes(path, &len);
  CHECK(bytes != NULL && len == 128 + 1024 * 16 && memcmp(bytes, "ASRLTBL", 8) == 0);
  free(bytes);
  CHECK_RC(check(a, "s", "/v1/messages", 3, T0, &d), ASRL_RESULT_OK);
  CHECK(d.allowed && d.limit == 5 && d.remaining == 2);
  /* A second limiter on the path (capacity 0: the segment's) shares the counts. */
  o.capacity = 0;
  o.header_style = ASRL_HEADER_STYLE_IETF;
  CHECK_RC(open_shared(path, NULL, &o, &b), ASRL_RESULT_OK);
  CHECK(asrl_limiter_capacity(b) == 1024);
  CHECK_RC(check(b, "s", "/v1/messages", 1, T0, &d), ASRL_RESULT_OK);
  CHECK(d.allowed && d.remaining == 1);
  headers_of(b, &d, text);
  CHECK(strstr(text, "RateLimit: \"messaging.1\";r=1;t=1\r\n") != NULL);
  CHECK_RC(peek(a, "s", "/v1/messages", &d), ASRL_RESULT_OK);
  CHECK(d.remaining == 1);
  asrl_limiter_free(a);
  asrl_limiter_free(b);
  /* The segment outlives its limiters. */
  CHECK(access(path, F_OK) == 0);
  CHECK_RC(open_shared(path, NULL, NULL, &a), ASRL_RESULT_OK);
  CHECK_RC(peek(a, "s", "/v1/messages", &d), ASRL_RESULT_OK);
  CHECK(d.remaining == 1);
  asrl_limiter_free(a);
  unlink(path);
  /* No capacity anywhere and no segment: ASRL_DEFAULT_CAPACITY cells. */
  seg_path("default-capacity", path, sizeof path);
  CHECK_RC(open_shared(path, NULL, NULL, &a), ASRL_RESULT_OK);
  CHECK(asrl_limiter_capacity(a) == ASRL_DEFAULT_CAPACITY);
  asrl_limiter_free(a);
  unlink(path);
  /* The config's "capacity" when the options have none. */
  seg_path("config-capacity", path, sizeof path);
  CHECK_RC(open_shared(path, CUSTOM, NULL, &a), ASRL_RESULT_OK);
  CHECK(asrl_limiter_capacity(a) == 4096);
  asrl_limiter_free(a);
  unlink(path);
  CHECK(dir_entries_with(".tmp-") == 0);
}

/* Two processes open one path at once (one creates the segment, the other opens it)
 * and hammer one key at a frozen instant: together they admit exactly the capacity. */
static void test_shared_two_processes_admit_exactly_the_capacity(void) {
  char path[512];
  int ready[2], go[2], results[2];
  pid_t kids[2];
  int i, status, sums[3] = {0, 0, 0};
  asrl_limiter *l = NULL;
  asrl_decision d;
  seg_path("two-processes", path, sizeof path);
  CHECK(pipe(ready) == 0 && pipe(go) == 0 && pipe(results) == 0);
  fflush(NULL);
  for (i = 0; i < 2; i++) {
    kids[i] = fork();
    CHECK(kids[i] >= 0);
    if (kids[i] == 0) {
      static const char *const policies[3] = {"burst", "window", "both"};
      int counts[3] = {-1, -1, -1}, p, k;
      char byte = 0;
      asrl_limiter *cl = NULL;
      asrl_result rc = open_shared(path, CUSTOM, NULL, &cl);
      if (write(ready[1], rc == ASRL_RESULT_OK ? "r" : "x", 1) != 1 || read(go[0], &byte, 1) != 1) _exit(2);
      if (rc == ASRL_RESULT_OK) {
        for (p = 0; p < 3; p++) {
          counts[p] = 0;
          for (k = 0; k < 300; k++) {
            asrl_decision cd;
            if (asrl_check_policy(cl, (const uint8_t *)"hot", 3, policies[p], strlen(policies[p]), 1,
                                  T0, T0, &cd) != ASRL_RESULT_OK) {
              counts[p] = -1000000;
            } else {
              counts[p] += cd.allowed;
            }
          }
        }
      }
      asrl_limiter_free(cl);
      _exit(write(results[1], counts, sizeof counts) == (ssize_t)sizeof counts ? 0 : 3);
    }
  }
  /* Both have opened the segment: let them go at once. */
  for (i = 0; i < 2; i++) {
    char byte = 0;
    CHECK(read(ready[0], &byte, 1) == 1 && byte == 'r');
  }
  CHECK(write(go[1], "gg", 2) == 2);
  for (i = 0; i < 2; i++) {
    int counts[3] = {0, 0, 0}, p;
    CHECK(read(results[0], counts, sizeof counts) == (ssize_t)sizeof counts);
    for (p = 0; p < 3; p++) {
      CHECK(counts[p] >= 0);
      sums[p] += counts[p];
    }
  }
  for (i = 0; i < 2; i++) {
    CHECK(waitpid(kids[i], &status, 0) == kids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  /* GCRA burst 200, window 150, both (window 90 and GCRA 70): 70, of 600 tries each. */
  CHECK(sums[0] == 200 && sums[1] == 150 && sums[2] == 70);
  for (i = 0; i < 6; i++) close(i < 2 ? ready[i] : i < 4 ? go[i - 2] : results[i - 4]);
  CHECK_RC(open_shared(path, CUSTOM, NULL, &l), ASRL_RESULT_OK);
  CHECK_RC(asrl_peek_policy(l, (const uint8_t *)"hot", 3, "window", 6, 1, T0, T0, &d), ASRL_RESULT_OK);
  CHECK(!d.allowed && d.remaining == 0);
  asrl_limiter_free(l);
  CHECK(dir_entries_with(".tmp-") == 0);
  unlink(path);
}

/* Every refusal gives its documented result and text, changes no byte of the file and
 * leaves no file behind; the limiter out-pointer is not written. */
static void test_shared_refusals_change_nothing(void) {
  static const char bad_limit[] =
      "{\"policies\": {\"alpha\": [{\"algorithm\": \"window\", \"limit\": 0, \"period_ms\": 1000}]}}";
  char path[512], other[512], text[1024];
  asrl_limiter *l = NULL, *sentinel_l = (asrl_limiter *)&l, *out = sentinel_l;
  asrl_options o;
  asrl_decision d;
  unsigned char *before, *copy;
  size_t len = 0;
  memset(&o, 0, sizeof o);
  seg_path("refusals", path, sizeof path);
  CHECK_RC(open_shared(path, CUSTOM, NULL, &l), ASRL_RESULT_OK);
  CHECK_RC(check(l, "r", "/anything", 1, T0, &d), ASRL_RESULT_OK);
  asrl_limiter_free(l);
  before = file_bytes(path, &len);
  CHECK(before != NULL && len == 128 + 4096 * 16);
  if (!before) return;

  /* Capacity: the segment has 4096 cells. */
  o.capacity = 1024;
  CHECK_RC(open_shared(path, CUSTOM, &o, &out), ASRL_RESULT_SHARED_CAPACITY);
  CHECK(strstr(shared_error(text), "capacity 4096") != NULL && strstr(text, "1024") != NULL);
  /* Policies: the documented config is not CUSTOM. */
  o.capacity = 4096;
  CHECK_RC(open_shared(path, NULL, &o, &out), ASRL_RESULT_SHARED_CONFIG);
  CHECK(strstr(shared_error(text), "other policies or routes") != NULL);
  /* Arguments. */
  o.capacity = 0;
  o.seed[0] = 1;
  CHECK_RC(open_shared(path, CUSTOM, &o, &out), ASRL_RESULT_INVALID_PARAMETER);
  CHECK(strncmp(shared_error(text), "options.seed", 12) == 0);
  o.seed[0] = 0;
  o.full_table_mode = 9;
  CHECK_RC(open_shared(path, CUSTOM, &o, &out), ASRL_RESULT_INVALID_PARAMETER);
  o.full_table_mode = 0;
  CHECK_RC(open_shared(path, bad_limit, &o, &out), ASRL_RESULT_INVALID_CONFIG);
  CHECK(strncmp(shared_error(text), "policies.alpha[0].limit: ", 25) == 0);
  CHECK_RC(asrl_limiter_open_shared(path, 0, CUSTOM, strlen(CUSTOM), &o, &out), ASRL_RESULT_INVALID_PARAMETER);
  CHECK_RC(asrl_limiter_open_shared("a\0b", 3, CUSTOM, strlen(CUSTOM), &o, &out), ASRL_RESULT_INVALID_PARAMETER);
  CHECK_RC(asrl_limiter_open_shared(NULL, 3, CUSTOM, strlen(CUSTOM), &o, &out), ASRL_RESULT_NULL_PARAMETER);
  CHECK_RC(open_shared(path, CUSTOM, &o, NULL), ASRL_RESULT_NULL_PARAMETER);
  CHECK(out == sentinel_l);
  CHECK(unchanged(path, before, len));

  /* Another layout version (the version is read before the check hash). */
  copy = (unsigned char *)malloc(len);
  CHECK(copy != NULL);
  if (copy) {
    memcpy(copy, before, len);
    copy[8] = 1;
    seg_path("layout", other, sizeof other);
    CHECK(write_file(other, copy, len));
    CHECK_RC(open_shared(other, CUSTOM, NULL, &out), ASRL_RESULT_SHARED_LAYOUT);
    CHECK(strstr(shared_error(text), "layout version 1") != NULL);
    CHECK(unchanged(other, copy, len));
    unlink(other);
    /* A header field changed without its hash: corrupt. */
    memcpy(copy, before, len);
    copy[24] ^= 1;
    seg_path("corrupt", other, sizeof other);
    CHECK(write_file(other, copy, len));
    CHECK_RC(open_shared(other, CUSTOM, NULL, &out), ASRL_RESULT_SHARED_CORRUPT);
    CHECK(strstr(shared_error(text), "corrupt") != NULL);
    CHECK(unchanged(other, copy, len));
    unlink(other);
    /* Not a segment at all. */
    memset(copy, 'x', len);
    seg_path("not-a-segment", other, sizeof other);
    CHECK(write_file(other, copy, len));
    CHECK_RC(open_shared(other, CUSTOM, NULL, &out), ASRL_RESULT_SHARED_NOT_A_SEGMENT);
    CHECK(strstr(shared_error(text), "not-a-segment: not a rate-limit table segment") != NULL);
    CHECK(unchanged(other, copy, len));
    unlink(other);
    free(copy);
  }
  /* Truncated: the header and 100 bytes of cells. */
  seg_path("truncated", other, sizeof other);
  CHECK(write_file(other, before, 128 + 100));
  CHECK_RC(open_shared(other, CUSTOM, NULL, &out), ASRL_RESULT_SHARED_TRUNCATED);
  CHECK(strstr(shared_error(text), "is 228 bytes, its header implies 65664") != NULL);
  CHECK(unchanged(other, before, 128 + 100));
  unlink(other);
  /* A missing directory: nothing is created. */
  seg_path("no-such-dir/segment", other, sizeof other);
  CHECK_RC(open_shared(other, CUSTOM, NULL, &out), ASRL_RESULT_SHARED_IO);
  CHECK(strstr(shared_error(text), "no-such-dir") != NULL &&
        strstr(text, "No such file or directory") != NULL);
  seg_path("no-such-dir", other, sizeof other);
  CHECK(access(other, F_OK) != 0);
  /* A directory where the segment should be. */
  CHECK_RC(open_shared(g_dir, CUSTOM, NULL, &out), ASRL_RESULT_SHARED_IO);

  CHECK(out == sentinel_l);
  CHECK(unchanged(path, before, len));
  CHECK(dir_entries_with(".tmp-") == 0);
  /* The segment still works, with its count. */
  CHECK_RC(open_shared(path, CUSTOM, NULL, &l), ASRL_RESULT_OK);
  CHECK(shared_error(text)[0] == '\0');
  CHECK_RC(check(l, "r", "/anything", 1, T0, &d), ASRL_RESULT_OK);
  CHECK(d.allowed && d.remaining == 1);
  asrl_limiter_free(l);
  free(before);
  unlink(path);
}

/* Read-only places. Tests run as root here, which ignores file modes: a path under /sys
 * (root may not create files there), and a read-only segment and directory opened by a
 * process of another user (a child that drops to "nobody"). */
static void test_shared_read_only(void) {
  char path[512], rodir[512], fresh[512], text[1024];
  asrl_limiter *out = NULL;
  unsigned char *before;
  size_t len = 0;
  pid_t child;
  int status = 0;
  struct stat st;
  /* /sys: sysfs takes no new files, from root either (EACCES; EROFS where read-only). */
  if (stat("/sys/kernel", &st) == 0) {
    CHECK_RC(open_shared("/sys/kernel/asrl-test-segment", NULL, NULL, &out), ASRL_RESULT_SHARED_IO);
    CHECK(strstr(shared_error(text), "/sys/kernel/asrl-test-segment") != NULL);
    CHECK(access("/sys/kernel/asrl-test-segment", F_OK) != 0);
  } else {
    printf("     skipped the /sys case: no /sys/kernel here\n");
  }
  /* A read-only segment in a read-only directory. */
  seg_path("ro", rodir, sizeof rodir);
  CHECK(mkdir(rodir, 0755) == 0);
  seg_path("ro/segment", path, sizeof path);
  seg_path("ro/fresh", fresh, sizeof fresh);
  CHECK_RC(open_shared(path, NULL, NULL, &out), ASRL_RESULT_OK);
  asrl_limiter_free(out);
  out = NULL;
  CHECK(chmod(path, 0444) == 0 && chmod(rodir, 0555) == 0);
  before = file_bytes(path, &len);
  CHECK(before != NULL);
  fflush(NULL);
  child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    int ok = 1;
    asrl_limiter *cl = NULL;
    char msg[1024];
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(77);
    ok &= open_shared(path, NULL, NULL, &cl) == ASRL_RESULT_SHARED_IO;
    ok &= strstr(shared_error(msg), "Permission denied") != NULL;
    ok &= open_shared(fresh, NULL, NULL, &cl) == ASRL_RESULT_SHARED_IO;
    ok &= strstr(shared_error(msg), "Permission denied") != NULL;
    ok &= cl == NULL;
    free(before);
    _exit(ok ? 0 : 1);
  }
  CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
    printf("     skipped the read-only file case: cannot drop root (setuid failed)\n");
  } else {
    CHECK(WEXITSTATUS(status) == 0);
  }
  CHECK(before != NULL && unchanged(path, before, len));
  CHECK(access(fresh, F_OK) != 0);
  free(before);
  CHECK(chmod(rodir, 0755) == 0);
  unlink(path);
  rmdir(rodir);
}

static void test_clocks(void) {
  struct timespec ts;
  uint64_t a, c, w;
  a = asrl_monotonic_ns();
  clock_gettime(CLOCK_MONOTONIC, &ts);
  c = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  /* The same clock: ours is read first, so not later; and within a second. */
  CHECK(a <= c && c - a < UINT64_C(1000000000));
  CHECK(asrl_monotonic_ns() >= c);
  w = asrl_wall_ns();
  /* time() may read a coarser clock, a tick behind. */
  CHECK(w / 1000000000u + 2 >= (uint64_t)time(NULL) && w / 1000000000u <= (uint64_t)time(NULL) + 1);
}

static void test_full_table_modes(void) {
  asrl_options o = seeded(16);
  asrl_limiter *open_l = NULL, *closed_l = NULL;
  asrl_decision d;
  asrl_stats s;
  char key[32];
  int i, flagged_open = 0, flagged_closed = 0;
  CHECK_RC(asrl_limiter_new(NULL, 0, &o, &open_l), ASRL_RESULT_OK);
  o.full_table_mode = ASRL_FULL_TABLE_MODE_CLOSED;
  CHECK_RC(asrl_limiter_new(NULL, 0, &o, &closed_l), ASRL_RESULT_OK);
  /* 40 keys at one frozen instant into 16 cells: some find none. */
  for (i = 0; i < 40; i++) {
    snprintf(key, sizeof key, "key-%d", i);
    CHECK_RC(check(open_l, key, "/v1/status", 1, T0, &d), ASRL_RESULT_OK);
    CHECK(d.allowed);
    flagged_open += d.table_full;
    CHECK_RC(check(closed_l, key, "/v1/status", 1, T0, &d), ASRL_RESULT_OK);
    if (d.table_full) {
      flagged_closed++;
      CHECK(!d.allowed && d.retry_after_seconds == 1);
    } else {
      CHECK(d.allowed);
    }
  }
  CHECK(flagged_open == 24 && flagged_closed == 24);
  CHECK_RC(asrl_limiter_stats(open_l, &s), ASRL_RESULT_OK);
  CHECK(s.table_full_open == 24 && s.table_full_closed == 0);
  CHECK_RC(asrl_limiter_stats(closed_l, &s), ASRL_RESULT_OK);
  CHECK(s.table_full_open == 0 && s.table_full_closed == 24);
  asrl_limiter_free(open_l);
  asrl_limiter_free(closed_l);
}

static void test_header_styles(void) {
  asrl_options o = seeded(256);
  asrl_limiter *l = NULL;
  asrl_decision d;
  char text[1024];
  o.header_style = ASRL_HEADER_STYLE_IETF;
  CHECK_RC(asrl_limiter_new(NULL, 0, &o, &l), ASRL_RESULT_OK);
  CHECK_RC(check(l, "i", "/v1/messages", 1, T0, &d), ASRL_RESULT_OK);
  headers_of(l, &d, text);
  CHECK(strncmp(text, "RateLimit-Policy: ", 18) == 0);
  CHECK(strstr(text, "\r\nRateLimit: \"messaging.1\";r=4;t=1\r\n") != NULL);
  CHECK(strstr(text, "X-RateLimit") == NULL);
  asrl_limiter_free(l);
  o.header_style = ASRL_HEADER_STYLE_BOTH;
  CHECK_RC(asrl_limiter_new(NULL, 0, &o, &l), ASRL_RESULT_OK);
  CHECK_RC(check(l, "i", "/v1/messages", 1, T0, &d), ASRL_RESULT_OK);
  headers_of(l, &d, text);
  CHECK(strncmp(text, "X-RateLimit-Limit: 5\r\n", 22) == 0);
  CHECK(strstr(text, "RateLimit-Policy: ") != NULL);
  asrl_limiter_free(l);
}

static void test_os_seed(void) {
  asrl_limiter *l = NULL;
  asrl_options o;
  asrl_decision d;
  memset(&o, 0, sizeof o);
  o.capacity = 64;
  CHECK_RC(asrl_limiter_new(NULL, 0, &o, &l), ASRL_RESULT_OK);
  CHECK_RC(check(l, "r", "/v1/media", 1, T0, &d), ASRL_RESULT_OK);
  CHECK(d.allowed && d.remaining == 29);
  asrl_limiter_free(l);
}

/* pthreads hammering one key at a frozen instant admit exactly the capacity. */
#define THREADS 4
struct race {
  const asrl_limiter *l;
  const char *policy;
  int attempts;
  int admitted;
  int errors;
  pthread_barrier_t *start;
};

static void *race_worker(void *arg) {
  struct race *r = (struct race *)arg;
  asrl_decision d;
  int i;
  pthread_barrier_wait(r->start);
  for (i = 0; i < r->attempts; i++) {
    asrl_result rc = asrl_check_policy(r->l, (const uint8_t *)"hot", 3, r->policy,
                                       strlen(r->policy), 1, T0, T0, &d);
    if (rc != ASRL_RESULT_OK) {
      r->errors++;
    } else if (d.allowed) {
      r->admitted++;
    }
  }
  return NULL;
}

static int race(const asrl_limiter *l, const char *policy, int attempts) {
  pthread_t t[THREADS];
  struct race r[THREADS];
  pthread_barrier_t start;
  int i, total = 0, errors = 0;
  pthread_barrier_init(&start, NULL, THREADS);
  for (i = 0; i < THREADS; i++) {
    r[i].l = l;
    r[i].policy = policy;
    r[i].attempts = attempts;
    r[i].admitted = 0;
    r[i].errors = 0;
    r[i].start = &start;
    CHECK(pthread_create(&t[i], NULL, race_worker, &r[i]) == 0);
  }
  for (i = 0; i < THREADS; i++) {
    pthread_join(t[i], NULL);
    total += r[i].admitted;
    errors += r[i].errors;
  }
  pthread_barrier_destroy(&start);
  CHECK(errors == 0);
  return total;
}

static void test_threads_admit_exactly_the_capacity(void) {
  asrl_limiter *l = make(CUSTOM, 0);
  CHECK(race(l, "burst", 100) == 200);  /* GCRA: burst 200 of 400 tries */
  CHECK(race(l, "window", 100) == 150); /* window: 150 of 400 */
  CHECK(race(l, "both", 100) == 70);    /* window 90 and GCRA 70: 70 */
  asrl_limiter_free(l);
}

static void test_panic_boundary(void) {
#if defined(ASRL_FEATURE_TEST_PANIC)
  asrl_limiter *l = make(NULL, 64);
  asrl_decision d;
  CHECK_RC(asrl_test_panic(), ASRL_RESULT_PANIC);
  CHECK_RC(asrl_test_panic(), ASRL_RESULT_PANIC);
  /* The library still works afterwards. */
  CHECK_RC(check(l, "after", "/v1/status", 1, T0, &d), ASRL_RESULT_OK);
  CHECK(d.allowed);
  asrl_limiter_free(l);
#else
  CHECK(!"built without ASRL_FEATURE_TEST_PANIC");
#endif
}

/* ---------------------------------------------------------------- runner */

struct test {
  const char *name;
  void (*fn)(void);
};

int main(void) {
  static const struct test tests[] = {
      {"version", test_version},
      {"documented_defaults_burst_and_429", test_documented_defaults_burst_and_429},
      {"peek_counts_nothing", test_peek_counts_nothing},
      {"json_config_and_policies", test_json_config_and_policies},
      {"config_errors_name_the_field", test_config_errors_name_the_field},
      {"misuse_changes_nothing", test_misuse_changes_nothing},
      {"writers_size_rules", test_writers_size_rules},
      {"result_messages", test_result_messages},
      {"table_bytes", test_table_bytes},
      {"caller_memory", test_caller_memory},
      {"shared_memory_across_fork", test_shared_memory_across_fork},
      {"shared_segment", test_shared_segment},
      {"shared_two_processes_admit_exactly_the_capacity", test_shared_two_processes_admit_exactly_the_capacity},
      {"shared_refusals_change_nothing", test_shared_refusals_change_nothing},
      {"shared_read_only", test_shared_read_only},
      {"clocks", test_clocks},
      {"full_table_modes", test_full_table_modes},
      {"header_styles", test_header_styles},
      {"os_seed", test_os_seed},
      {"threads_admit_exactly_the_capacity", test_threads_admit_exactly_the_capacity},
      {"panic_boundary", test_panic_boundary},
  };
  size_t i, n = sizeof tests / sizeof tests[0];
  int passed = 0, failed = 0;
  for (i = 0; i < n; i++) {
    int before = g_failed_checks;
    tests[i].fn();
    if (g_failed_checks == before) {
      passed++;
      printf("ok   %s\n", tests[i].name);
    } else {
      failed++;
      printf("FAIL %s\n", tests[i].name);
    }
  }
  if (g_dir[0] != '\0' && rmdir(g_dir) != 0) {
    printf("FAIL the test directory %s is not empty\n", g_dir);
    failed++;
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
