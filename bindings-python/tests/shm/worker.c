/* A C process on a rate-limit table segment made by the Python binding (or any binding):
 * the C binding's asrl_limiter_open_shared, which checks the segment's layout, capacity
 * and config fingerprint and takes its seed.
 *
 * Usage: worker SEGMENT CONFIG_JSON CLOCK ATTEMPTS LOG STOP
 *   CLOCK    "real" (CLOCK_MONOTONIC / CLOCK_REALTIME) or "frozen:NS" (both clocks NS)
 *   ATTEMPTS checks of key "one-key" on route "/"; 0: until the file STOP exists
 *   LOG      "-" or a file that gets one byte per admission, written after it returns
 *   STOP     "-" or the file whose existence ends an ATTEMPTS 0 run
 * Prints "READY" once the limiter is made, waits for a line on stdin, runs, then prints
 * "ADMITTED n". Exit status 0, or 2 with a message on stderr. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aisoule_ratelimit.h"

static uint64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int fail(const char *what) {
  fprintf(stderr, "worker: %s\n", what);
  return 2;
}

/* The C binding opens the segment: 0, or 2 with a message. */
static int open_limiter(const char *path, const char *config, asrl_limiter **l) {
  char why[512];
  size_t n = 0;
  asrl_result rc = asrl_limiter_open_shared(path, strlen(path), config, strlen(config), NULL, l);
  if (rc == ASRL_RESULT_OK) return 0;
  if (asrl_shared_error(why, sizeof why - 1, &n) != ASRL_RESULT_OK) n = 0;
  why[n] = 0;
  fprintf(stderr, "worker: asrl_limiter_open_shared: result %u: %s\n", (unsigned)rc, why);
  return 2;
}

int main(int argc, char **argv) {
  int frozen, log_fd = -1;
  uint64_t frozen_ns = 0, attempts, admitted = 0, i;
  asrl_limiter *l = NULL;
  asrl_decision d;
  char line[16];

  if (argc != 7) return fail("usage: worker SEGMENT CONFIG_JSON CLOCK ATTEMPTS LOG STOP");
  frozen = strncmp(argv[3], "frozen:", 7) == 0;
  if (frozen) frozen_ns = strtoull(argv[3] + 7, NULL, 10);
  else if (strcmp(argv[3], "real") != 0) return fail("CLOCK must be real or frozen:NS");
  attempts = strtoull(argv[4], NULL, 10);
  if (open_limiter(argv[1], argv[2], &l) != 0) return 2;
  if (strcmp(argv[5], "-") != 0) {
    log_fd = open(argv[5], O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (log_fd < 0) return fail("cannot open the log");
  }

  printf("READY\n");
  fflush(stdout);
  if (fgets(line, sizeof line, stdin) == NULL) return fail("no go line on stdin");

  for (i = 0; attempts == 0 || i < attempts; i++) {
    uint64_t mono = frozen ? frozen_ns : clock_ns(CLOCK_MONOTONIC);
    uint64_t wall = frozen ? frozen_ns : clock_ns(CLOCK_REALTIME);
    if (asrl_check(l, (const uint8_t *)"one-key", 7, "/", 1, 1, mono, wall, &d) != ASRL_RESULT_OK)
      return fail("asrl_check failed");
    if (d.allowed) {
      admitted++;
      if (log_fd >= 0 && write(log_fd, "x", 1) != 1) return fail("cannot write the log");
    }
    if (attempts == 0 && (i & 1023) == 0 && strcmp(argv[6], "-") != 0 && access(argv[6], F_OK) == 0) break;
  }
  printf("ADMITTED %llu\n", (unsigned long long)admitted);
  asrl_limiter_free(l);
  return 0;
}
