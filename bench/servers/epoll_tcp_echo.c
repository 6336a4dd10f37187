// The floor of bench/net_tcp.ts: a TCP echo server with no framework, one
// epoll set, one recv and one send per readable socket. Every engine in the
// bench makes at least these system calls per message, so this measures
// what the kernel costs on its own (user space is a few instructions).
//
// Bench-only: it relies on the load generator's bound (at most
// connections × in flight × size bytes outstanding, far below a socket's
// buffer), so a send that the socket does not take whole is an error here.
//
//   PORT=7000 [HOSTNAME=127.0.0.1] ./epoll_tcp_echo
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t s_stop;

static void on_signal(int sig) {
  (void) sig;
  s_stop = 1;
}

int main(void) {
  const char *port = getenv("PORT");
  const char *host = getenv("HOSTNAME");
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(port ? port : "7000"))};
  inet_pton(AF_INET, host ? host : "127.0.0.1", &sa.sin_addr);
  int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(lfd, (struct sockaddr *) &sa, sizeof(sa)) != 0 || listen(lfd, 1024) != 0) {
    perror("listen");
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, evs[256];
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  printf("Listening on tcp://%s:%s/\n", host ? host : "127.0.0.1", port ? port : "7000");
  fflush(stdout);
  static char buf[65536];
  while (!s_stop) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        int c;
        while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        }
        continue;
      }
      ssize_t r = recv(fd, buf, sizeof(buf), 0);
      if (r > 0) {
        if (send(fd, buf, (size_t) r, MSG_NOSIGNAL) != r) {
          fprintf(stderr, "partial send: the floor server assumes the bench's bounded load\n");
          return 1;
        }
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
      }
    }
  }
  return 0;
}
