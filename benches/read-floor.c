/*
 * The floor under any collector's CPU: a program that only reads the files one agent
 * cycle in `same` mode reads (kept open, pread at offset 0 and once more to see the end,
 * one statfs), every INTERVAL seconds, and prints its own CPU per cycle. Nothing parsed,
 * built, encoded or sent. Run by benches/read-floor.sh, which lists the files.
 *
 *   read-floor INTERVAL CYCLES FILE...
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s INTERVAL CYCLES FILE...\n", argv[0]);
    return 2;
  }
  int interval = atoi(argv[1]), cycles = atoi(argv[2]), n = argc - 3;
  int *fds = calloc(n, sizeof *fds);
  static char buf[1 << 16];
  long bytes = 0;
  for (int i = 0; i < n; i++) fds[i] = open(argv[i + 3], O_RDONLY);
  struct rusage a, b;
  getrusage(RUSAGE_SELF, &a);
  for (int c = 0; c < cycles; c++) {
    sleep(interval);
    for (int i = 0; i < n; i++) {
      if (fds[i] < 0) continue;
      ssize_t r = pread(fds[i], buf, sizeof buf, 0);
      if (r > 0) {
        bytes += r;
        pread(fds[i], buf, sizeof buf, r);
      }
    }
    struct statfs s;
    statfs("/", &s);
  }
  getrusage(RUSAGE_SELF, &b);
  double user = (b.ru_utime.tv_sec - a.ru_utime.tv_sec) * 1e3 + (b.ru_utime.tv_usec - a.ru_utime.tv_usec) / 1e3;
  double sys = (b.ru_stime.tv_sec - a.ru_stime.tv_sec) * 1e3 + (b.ru_stime.tv_usec - a.ru_stime.tv_usec) / 1e3;
  printf("%d files, %ld bytes per cycle, %d cycles every %ds: CPU %.3f ms per cycle (user %.3f, system %.3f)\n",
         n, bytes / cycles, cycles, interval, (user + sys) / cycles, user / cycles, sys / cycles);
  return 0;
}
