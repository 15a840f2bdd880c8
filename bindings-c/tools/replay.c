/* replay: runs a conformance trace (conformance/FORMAT.md) through libaisoule_ratelimit
 * and prints one JSON answer a request. A malformed trace: "line N: ..." on stderr and
 * exit status 2 (nothing on stdout).
 *
 * The request lines are parsed here by a small JSON reader; the config line's inner
 * object is handed, as text, to the library's JSON config parser. Every figure and
 * every byte of header and body text comes from the library. */
#define _POSIX_C_SOURCE 200809L

#include "aisoule_ratelimit.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct request {
  size_t line;
  uint64_t t_ms;
  char *key;
  size_t key_len;
  char *route;
  size_t route_len;
  uint64_t cost;
};

/* A cursor over one line. */
struct cur {
  const char *s;
  size_t n, i;
  char err[160];
};

static void fail_at(struct cur *c, const char *fmt, ...) {
  va_list ap;
  if (c->err[0]) return;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
}

static void ws(struct cur *c) {
  while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' ||
                         c->s[c->i] == '\r' || c->s[c->i] == '\n'))
    c->i++;
}

static int eat(struct cur *c, char ch) {
  ws(c);
  if (c->i < c->n && c->s[c->i] == ch) {
    c->i++;
    return 1;
  }
  return 0;
}

static int hex4(struct cur *c, unsigned *out) {
  unsigned v = 0;
  int k;
  if (c->i + 4 > c->n) return 0;
  for (k = 0; k < 4; k++) {
    char h = c->s[c->i + k];
    v <<= 4;
    if (h >= '0' && h <= '9') v |= (unsigned)(h - '0');
    else if (h >= 'a' && h <= 'f') v |= (unsigned)(h - 'a' + 10);
    else if (h >= 'A' && h <= 'F') v |= (unsigned)(h - 'A' + 10);
    else return 0;
  }
  c->i += 4;
  *out = v;
  return 1;
}

static size_t put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* A JSON string at the cursor. With `out` (room for the raw length), decodes it and
 * sets *len; without, only skips it. Raw bytes are checked to be UTF-8. */
static int string(struct cur *c, char *out, size_t *len) {
  size_t o = 0;
  ws(c);
  if (c->i >= c->n || c->s[c->i] != '"') {
    fail_at(c, "invalid JSON: expected a string at column %zu", c->i + 1);
    return 0;
  }
  c->i++;
  while (c->i < c->n) {
    unsigned char ch = (unsigned char)c->s[c->i];
    if (ch == '"') {
      c->i++;
      if (len) *len = o;
      return 1;
    }
    if (ch < 0x20) {
      fail_at(c, "invalid JSON: control character in a string at column %zu", c->i + 1);
      return 0;
    }
    if (ch == '\\') {
      char e;
      unsigned cp = 0;
      c->i++;
      if (c->i >= c->n) break;
      e = c->s[c->i++];
      switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
          if (!hex4(c, &cp)) {
            fail_at(c, "invalid JSON: bad \\u escape at column %zu", c->i + 1);
            return 0;
          }
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (c->i + 2 > c->n || c->s[c->i] != '\\' || c->s[c->i + 1] != 'u') {
              fail_at(c, "invalid JSON: lone surrogate at column %zu", c->i + 1);
              return 0;
            }
            c->i += 2;
            if (!hex4(c, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
              fail_at(c, "invalid JSON: lone surrogate at column %zu", c->i + 1);
              return 0;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail_at(c, "invalid JSON: lone surrogate at column %zu", c->i + 1);
            return 0;
          }
          break;
        default:
          fail_at(c, "invalid JSON: bad escape at column %zu", c->i);
          return 0;
      }
      if (out) o += put_utf8(out + o, cp);
      continue;
    }
    /* Raw UTF-8: check the sequence. */
    {
      size_t need = ch < 0x80 ? 0 : (ch & 0xE0) == 0xC0 ? 1 : (ch & 0xF0) == 0xE0 ? 2
                  : (ch & 0xF8) == 0xF0 ? 3 : 9;
      size_t k;
      if (need == 9 || ch == 0xC0 || ch == 0xC1 || ch > 0xF4 || c->i + need >= c->n) {
        fail_at(c, "invalid JSON: not UTF-8 at column %zu", c->i + 1);
        return 0;
      }
      for (k = 1; k <= need; k++) {
        if (((unsigned char)c->s[c->i + k] & 0xC0) != 0x80) {
          fail_at(c, "invalid JSON: not UTF-8 at column %zu", c->i + 1);
          return 0;
        }
      }
      if (out) memcpy(out + o, c->s + c->i, need + 1);
      o += out ? need + 1 : 0;
      c->i += need + 1;
    }
  }
  fail_at(c, "invalid JSON: unterminated string");
  return 0;
}

/* A JSON number; *is_uint and *value say whether it is a whole number fitting u64. */
static int number(struct cur *c, int *is_uint, uint64_t *value) {
  size_t start;
  int whole = 1, overflow = 0, digits = 0;
  uint64_t v = 0;
  ws(c);
  start = c->i;
  if (c->i < c->n && c->s[c->i] == '-') { whole = 0; c->i++; }
  while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') {
    unsigned d = (unsigned)(c->s[c->i] - '0');
    if (digits == 1 && v == 0) {
      fail_at(c, "invalid JSON: leading zero at column %zu", start + 1);
      return 0;
    }
    if (v > (UINT64_MAX - d) / 10) overflow = 1;
    v = v * 10 + d;
    digits++;
    c->i++;
  }
  if (digits == 0) {
    fail_at(c, "invalid JSON: expected a value at column %zu", start + 1);
    return 0;
  }
  if (c->i < c->n && c->s[c->i] == '.') {
    whole = 0;
    c->i++;
    if (c->i >= c->n || c->s[c->i] < '0' || c->s[c->i] > '9') {
      fail_at(c, "invalid JSON: bad number at column %zu", start + 1);
      return 0;
    }
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') c->i++;
  }
  if (c->i < c->n && (c->s[c->i] == 'e' || c->s[c->i] == 'E')) {
    whole = 0;
    c->i++;
    if (c->i < c->n && (c->s[c->i] == '+' || c->s[c->i] == '-')) c->i++;
    if (c->i >= c->n || c->s[c->i] < '0' || c->s[c->i] > '9') {
      fail_at(c, "invalid JSON: bad number at column %zu", start + 1);
      return 0;
    }
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') c->i++;
  }
  *is_uint = whole && !overflow;
  *value = v;
  return 1;
}

static int literal(struct cur *c, const char *word) {
  size_t k = strlen(word);
  ws(c);
  if (c->i + k <= c->n && memcmp(c->s + c->i, word, k) == 0) {
    c->i += k;
    return 1;
  }
  fail_at(c, "invalid JSON at column %zu", c->i + 1);
  return 0;
}

/* Skips any JSON value (checking its syntax). */
static int skip_value(struct cur *c, int depth) {
  int is_uint;
  uint64_t v;
  ws(c);
  if (depth > 64) {
    fail_at(c, "invalid JSON: nested too deeply");
    return 0;
  }
  if (c->i >= c->n) {
    fail_at(c, "invalid JSON: expected a value at column %zu", c->i + 1);
    return 0;
  }
  switch (c->s[c->i]) {
    case '"': return string(c, NULL, NULL);
    case 't': return literal(c, "true");
    case 'f': return literal(c, "false");
    case 'n': return literal(c, "null");
    case '{':
      c->i++;
      if (eat(c, '}')) return 1;
      do {
        if (!string(c, NULL, NULL)) return 0;
        if (!eat(c, ':')) { fail_at(c, "invalid JSON: expected ':' at column %zu", c->i + 1); return 0; }
        if (!skip_value(c, depth + 1)) return 0;
      } while (eat(c, ','));
      if (!eat(c, '}')) { fail_at(c, "invalid JSON: expected '}' at column %zu", c->i + 1); return 0; }
      return 1;
    case '[':
      c->i++;
      if (eat(c, ']')) return 1;
      do {
        if (!skip_value(c, depth + 1)) return 0;
      } while (eat(c, ','));
      if (!eat(c, ']')) { fail_at(c, "invalid JSON: expected ']' at column %zu", c->i + 1); return 0; }
      return 1;
    default:
      return number(c, &is_uint, &v);
  }
}

/* The kind of the value at the cursor, for error messages and type checks. */
static char peek_kind(struct cur *c) {
  ws(c);
  return c->i < c->n ? c->s[c->i] : '\0';
}

/* A whole number fitting u64 into *out: 1; not one (a string, `-0`, `5.0`, `1e3`...): -1, the
 * value skipped and no error set, since a later occurrence of the field counts instead
 * (the last, as serde_json, Python's json and JSON.parse keep it); invalid JSON: 0. */
static int whole_number(struct cur *c, uint64_t *out) {
  int is_uint = 0;
  char k = peek_kind(c);
  if (k != '-' && (k < '0' || k > '9')) return skip_value(c, 0) ? -1 : 0;
  if (!number(c, &is_uint, out)) return 0;
  return is_uint ? 1 : -1;
}

/* A string into *out (allocated): 1; not a string: -1, skipped, no error set (as above);
 * invalid JSON or no memory: 0. */
static int text_field(struct cur *c, char **out, size_t *len) {
  if (peek_kind(c) != '"') return skip_value(c, 0) ? -1 : 0;
  free(*out);
  *out = (char *)malloc(c->n + 1);
  if (!*out) {
    fail_at(c, "out of memory");
    return 0;
  }
  return string(c, *out, len);
}

enum line_kind { LINE_BLANK, LINE_CONFIG, LINE_REQUEST, LINE_ERROR };

/* Parses one line: a request into *r, or the config object's span into cfg and cfg_len. */
static enum line_kind parse_line(struct cur *c, struct request *r, const char **cfg, size_t *cfg_len) {
  int has_t = 0, has_key = 0, has_route = 0, has_config = 0, fields = 0;
  /* Per field, the last occurrence's answer: 1 good, -1 of the wrong kind. */
  int t_ok = 1, key_ok = 1, route_ok = 1, cost_ok = 1;
  char name[16];
  ws(c);
  if (c->i == c->n) return LINE_BLANK;
  if (!eat(c, '{')) {
    if (skip_value(c, 0)) fail_at(c, "must be a JSON object");
    return LINE_ERROR;
  }
  r->cost = 1;
  if (!eat(c, '}')) {
    do {
      size_t nlen = 0, save;
      struct cur probe;
      fields++;
      /* Field names are short; a long one is unknown anyway. */
      probe = *c;
      if (!string(&probe, NULL, NULL)) { *c = probe; return LINE_ERROR; }
      save = probe.i;
      if (probe.i - c->i - 2 > sizeof name - 1 || memchr(c->s + c->i, '\\', save - c->i)) {
        *c = probe;
        if (!eat(c, ':') || !skip_value(c, 0)) { fail_at(c, "invalid JSON at column %zu", c->i + 1); return LINE_ERROR; }
        fail_at(c, "unknown field");
        return LINE_ERROR;
      }
      string(c, name, &nlen);
      name[nlen] = '\0';
      if (!eat(c, ':')) { fail_at(c, "invalid JSON: expected ':' at column %zu", c->i + 1); return LINE_ERROR; }
      if (strcmp(name, "config") == 0) {
        size_t start;
        ws(c);
        start = c->i;
        if (!skip_value(c, 0)) return LINE_ERROR;
        *cfg = c->s + start;
        *cfg_len = c->i - start;
        has_config = 1;
      } else if (strcmp(name, "t_ms") == 0) {
        if (!(t_ok = whole_number(c, &r->t_ms))) return LINE_ERROR;
        has_t = 1;
      } else if (strcmp(name, "cost") == 0) {
        if (!(cost_ok = whole_number(c, &r->cost))) return LINE_ERROR;
      } else if (strcmp(name, "key") == 0) {
        if (!(key_ok = text_field(c, &r->key, &r->key_len))) return LINE_ERROR;
        has_key = 1;
      } else if (strcmp(name, "route") == 0) {
        if (!(route_ok = text_field(c, &r->route, &r->route_len))) return LINE_ERROR;
        has_route = 1;
      } else {
        if (!skip_value(c, 0)) return LINE_ERROR;
        fail_at(c, "unknown field `%s`", name);
        return LINE_ERROR;
      }
    } while (eat(c, ','));
    if (!eat(c, '}')) {
      fail_at(c, "invalid JSON: expected '}' at column %zu", c->i + 1);
      return LINE_ERROR;
    }
  }
  ws(c);
  if (c->i != c->n) {
    fail_at(c, "invalid JSON: trailing characters at column %zu", c->i + 1);
    return LINE_ERROR;
  }
  if (has_config) {
    if (fields != 1) {
      fail_at(c, "a config line holds only `config`");
      return LINE_ERROR;
    }
    return LINE_CONFIG;
  }
  /* In the Rust replay's order: each field's presence, then its kind. */
  if (!has_t) { fail_at(c, "missing field `t_ms`"); return LINE_ERROR; }
  if (t_ok < 0) { fail_at(c, "`t_ms` must be a whole number of milliseconds"); return LINE_ERROR; }
  if (!has_key) { fail_at(c, "missing field `key`"); return LINE_ERROR; }
  if (key_ok < 0) { fail_at(c, "`key` must be a string"); return LINE_ERROR; }
  if (!has_route) { fail_at(c, "missing field `route`"); return LINE_ERROR; }
  if (route_ok < 0) { fail_at(c, "`route` must be a string"); return LINE_ERROR; }
  if (cost_ok < 0) { fail_at(c, "`cost` must be a whole number"); return LINE_ERROR; }
  if (r->t_ms > UINT64_MAX / 1000000u) {
    fail_at(c, "`t_ms` is too large for nanoseconds in 64 bits");
    return LINE_ERROR;
  }
  return LINE_REQUEST;
}

/* JSON-escapes `len` bytes of UTF-8 to stdout, in quotes. */
static void json_string(const char *s, size_t len) {
  size_t i;
  putchar('"');
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    switch (ch) {
      case '"': fputs("\\\"", stdout); break;
      case '\\': fputs("\\\\", stdout); break;
      case '\n': fputs("\\n", stdout); break;
      case '\r': fputs("\\r", stdout); break;
      case '\t': fputs("\\t", stdout); break;
      case '\b': fputs("\\b", stdout); break;
      case '\f': fputs("\\f", stdout); break;
      default:
        if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
  }
  putchar('"');
}

static void die(size_t line, const char *msg) {
  fprintf(stderr, "line %zu: %s\n", line, msg);
  exit(2);
}

static void message_of(asrl_result rc, char *buf, size_t cap) {
  size_t n = 0;
  if (asrl_result_message(rc, buf, cap - 1, &n) != ASRL_RESULT_OK) n = 0;
  buf[n] = '\0';
}

int main(int argc, char **argv) {
  FILE *f;
  char *line = NULL;
  size_t cap = 0, lineno = 0, nreq = 0, reqcap = 0, i;
  ssize_t got;
  struct request *reqs = NULL;
  char *config = NULL;
  size_t config_len = 0, config_line = 0;
  int seen_request = 0;
  asrl_limiter *limiter = NULL;
  asrl_options opts;
  asrl_result rc;
  char headers[2048], body[512], msg[512];

  if (argc != 2) {
    fprintf(stderr, "usage: replay TRACE\n");
    return 2;
  }
  f = fopen(argv[1], "rb");
  if (!f) {
    fprintf(stderr, "replay: %s: %s\n", argv[1], strerror(errno));
    return 2;
  }
  while ((got = getline(&line, &cap, f)) != -1) {
    struct cur c;
    struct request r;
    const char *cfg = NULL;
    size_t cfg_len = 0;
    enum line_kind kind;
    lineno++;
    while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) got--;
    c.s = line;
    c.n = (size_t)got;
    c.i = 0;
    c.err[0] = '\0';
    memset(&r, 0, sizeof r);
    r.line = lineno;
    kind = parse_line(&c, &r, &cfg, &cfg_len);
    if (kind == LINE_ERROR) {
      free(r.key);
      free(r.route);
      die(lineno, c.err[0] ? c.err : "invalid line");
    }
    if (kind == LINE_BLANK) continue;
    if (kind == LINE_CONFIG) {
      if (seen_request || config) die(lineno, "`config` may only be on the first line");
      config = (char *)malloc(cfg_len + 1);
      if (!config) die(lineno, "out of memory");
      memcpy(config, cfg, cfg_len);
      config_len = cfg_len;
      config_line = lineno;
      continue;
    }
    seen_request = 1;
    if (nreq == reqcap) {
      struct request *grown;
      reqcap = reqcap ? reqcap * 2 : 256;
      grown = (struct request *)realloc(reqs, reqcap * sizeof *reqs);
      if (!grown) die(lineno, "out of memory");
      reqs = grown;
    }
    reqs[nreq++] = r;
  }
  free(line);
  fclose(f);

  memset(&opts, 0, sizeof opts);
  opts.seed[0] = 0x5eed;
  opts.seed[1] = 0xc0ffee;
  rc = asrl_limiter_new(config, config_len, &opts, &limiter);
  if (rc == ASRL_RESULT_INVALID_CONFIG) {
    size_t n = 0;
    char text[400];
    if (asrl_config_error(config, config_len, text, sizeof text - 1, &n) != ASRL_RESULT_OK) n = 0;
    text[n] = '\0';
    snprintf(msg, sizeof msg, "config.%s", text);
    die(config_line, msg);
  } else if (rc != ASRL_RESULT_OK) {
    char text[256];
    message_of(rc, text, sizeof text);
    snprintf(msg, sizeof msg, "config: %s", text);
    die(config_line ? config_line : 1, msg);
  }

  for (i = 0; i < nreq; i++) {
    struct request *r = &reqs[i];
    asrl_decision d;
    uint64_t ns = r->t_ms * 1000000u;
    size_t hn = 0, bn = 0, p;
    const char *pname = NULL;
    size_t pname_len = 0;
    rc = asrl_check(limiter, (const uint8_t *)r->key, r->key_len, r->route, r->route_len, r->cost, ns, ns, &d);
    if (rc == ASRL_RESULT_INVALID_COST) {
      puts("{\"error\":\"invalid_cost\"}");
      continue;
    }
    if (rc != ASRL_RESULT_OK) {
      message_of(rc, msg, sizeof msg);
      fputs("{\"error\":", stdout);
      json_string(msg, strlen(msg));
      puts("}");
      continue;
    }
    if (asrl_decision_write_headers(limiter, &d, headers, sizeof headers, &hn) != ASRL_RESULT_OK ||
        asrl_decision_write_body(limiter, &d, body, sizeof body, &bn) != ASRL_RESULT_OK ||
        asrl_limiter_policy_name(limiter, d.policy, &pname, &pname_len) != ASRL_RESULT_OK) {
      die(r->line, "the library refused to write the answer");
    }
    printf("{\"allowed\":%s,\"status\":%u,\"policy\":", d.allowed ? "true" : "false", (unsigned)d.status);
    json_string(pname, pname_len);
    fputs(",\"headers\":{", stdout);
    /* "Name: value\r\n" lines into JSON members. */
    for (p = 0; p < hn;) {
      const char *ln = headers + p;
      const char *end = (const char *)memchr(ln, '\r', hn - p);
      const char *colon = (const char *)memchr(ln, ':', hn - p);
      if (!end || !colon || colon > end) die(r->line, "malformed header text");
      if (p) putchar(',');
      json_string(ln, (size_t)(colon - ln));
      putchar(':');
      json_string(colon + 2, (size_t)(end - colon - 2));
      p = (size_t)(end - headers) + 2;
    }
    fputs("},\"body\":", stdout);
    if (d.allowed) fputs("null", stdout);
    else json_string(body, bn);
    puts("}");
  }
  for (i = 0; i < nreq; i++) {
    free(reqs[i].key);
    free(reqs[i].route);
  }
  free(reqs);
  free(config);
  asrl_limiter_free(limiter);
  return 0;
}
