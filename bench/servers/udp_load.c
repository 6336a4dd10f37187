/*
 * UDP echo load generator for bench/net_udp.ts (built by it with gcc).
 *
 *   udp_load HOST PORT SOCKETS WINDOW SIZE WARMUP_S DURATION_S
 *
 * Opens SOCKETS client sockets, each keeping WINDOW datagrams of SIZE bytes
 * in flight (closed loop: each echo received sends the next). A socket that
 * hears nothing for 100 ms (its datagrams were dropped) sends its window
 * again. Prints "START" after the warm-up, then "COUNT n LOST m" after the
 * measured window: n echoes received in it, m windows re-sent.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: udp_load HOST PORT SOCKETS WINDOW SIZE WARMUP_S DURATION_S\n");
    return 2;
  }
  int nsock = atoi(argv[3]), window = atoi(argv[4]), size = atoi(argv[5]);
  double warm = atof(argv[6]), dur = atof(argv[7]);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
  inet_pton(AF_INET, argv[1], &to.sin_addr);
  int ep = epoll_create1(0);
  int *fds = calloc(nsock, sizeof(int));
  double *last = calloc(nsock, sizeof(double));
  char buf[65536];
  memset(buf, 'x', sizeof(buf));
  for (int i = 0; i < nsock; i++) {
    fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    connect(fds[i], (struct sockaddr *) &to, sizeof(to));
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    for (int k = 0; k < window; k++) send(fds[i], buf, size, 0);
    last[i] = now();
  }
  double t0 = now(), start = t0 + warm, end = start + dur;
  int started = 0;
  long count = 0, lost = 0;
  struct epoll_event evs[256];
  for (;;) {
    double t = now();
    if (!started && t >= start) {
      started = 1;
      count = 0;
      lost = 0;
      printf("START\n");
      fflush(stdout);
    }
    if (t >= end) break;
    int n = epoll_wait(ep, evs, 256, 10);
    for (int e = 0; e < n; e++) {
      int i = evs[e].data.u32;
      for (;;) {
        ssize_t r = recv(fds[i], buf, sizeof(buf), 0);
        if (r < 0) break;
        count++;
        send(fds[i], buf, size, 0);
        last[i] = t;
      }
    }
    for (int i = 0; i < nsock; i++) {
      if (t - last[i] > 0.1) {
        for (int k = 0; k < window; k++) send(fds[i], buf, size, 0);
        last[i] = t;
        lost++;
      }
    }
  }
  printf("COUNT %ld LOST %ld\n", count, lost);
  fflush(stdout);
  return 0;
}
