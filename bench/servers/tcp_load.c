/*
 * TCP echo load generator for bench/net_tcp.ts: CONNS connections, each
 * keeping INFLIGHT messages of SIZE bytes in flight (a new message is sent
 * for every echoed one), for SECONDS. Prints "messages N seconds S errors E"
 * where N counts messages echoed back whole. epoll, nonblocking, one thread.
 *
 *   tcp_load HOST PORT CONNS INFLIGHT SIZE SECONDS
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

struct conn {
  int fd;
  long long received;  // bytes echoed back
  long long owed;      // bytes to send still
  int want_out;        // registered for EPOLLOUT
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s HOST PORT CONNS INFLIGHT SIZE SECONDS\n", argv[0]);
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]), nconns = atoi(argv[3]), inflight = atoi(argv[4]), size = atoi(argv[5]);
  double seconds = atof(argv[6]);
  static char out[1 << 16], in[1 << 16];
  memset(out, 'x', sizeof(out));
  int ep = epoll_create1(0);
  struct conn *conns = calloc(nconns, sizeof(*conns));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, host, &sa.sin_addr);
  for (int i = 0; i < nconns; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
      perror("connect");
      return 1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    conns[i].fd = fd;
    conns[i].owed = (long long) inflight * size;
    conns[i].want_out = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  long long errors = 0;
  double start = now(), end = start + seconds;
  struct epoll_event evs[256];
  while (now() < end) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int k = 0; k < n; k++) {
      struct conn *c = &conns[evs[k].data.u32];
      if (evs[k].events & (EPOLLERR | EPOLLHUP)) {
        errors++;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        continue;
      }
      if (evs[k].events & EPOLLIN) {
        for (;;) {
          ssize_t r = recv(c->fd, in, sizeof(in), 0);
          if (r > 0) {
            long long before = c->received / size;
            c->received += r;
            c->owed += (c->received / size - before) * size;
            continue;
          }
          if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            errors++;
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
          }
          break;
        }
      }
      while (c->owed > 0) {
        size_t len = c->owed < (long long) sizeof(out) ? (size_t) c->owed : sizeof(out);
        ssize_t w = send(c->fd, out, len, MSG_NOSIGNAL);
        if (w > 0) {
          c->owed -= w;
          continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) errors++;
        break;
      }
      // Ask for EPOLLOUT only while the socket refused bytes (rare): one
      // epoll_ctl per state change, not per event.
      int want_out = c->owed > 0;
      if (want_out != c->want_out) {
        c->want_out = want_out;
        struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.u32 = evs[k].data.u32};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
      }
    }
  }
  double took = now() - start;
  long long messages = 0;
  for (int i = 0; i < nconns; i++) {
    messages += conns[i].received / size;
    close(conns[i].fd);
  }
  printf("messages %lld seconds %.3f errors %lld\n", messages, took, errors);
  return 0;
}
