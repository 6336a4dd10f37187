/*
 * WebSocket echo load generator for bench/ws.ts: CONNS connections, each
 * upgraded with a fixed handshake, then keeping INFLIGHT binary messages of
 * SIZE bytes in flight (masked client frames, prebuilt once; a new message
 * is sent for every echoed one), for SECONDS. Prints "messages N seconds S
 * errors E" where N counts messages echoed back whole (the server's frames
 * are unmasked and all of the same length). epoll, nonblocking, one thread;
 * the structure of bench/servers/tcp_load.c.
 *
 *   ws_load HOST PORT PATH CONNS INFLIGHT SIZE SECONDS
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
  int fd;
  long long received;  // bytes of the server's frames read
  long long sent;      // bytes of client frames sent
  long long owed;      // bytes of client frames to send still
  int want_out;        // registered for EPOLLOUT
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t header_len(size_t size) {
  return size < 126 ? 2 : size < 65536 ? 4 : 10;
}

// A binary, final, masked frame of SIZE bytes of 'x' at p; returns its length.
static size_t build_frame(unsigned char *p, size_t size) {
  static const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
  size_t h = 0;
  p[h++] = 0x82;
  if (size < 126) {
    p[h++] = 0x80 | (unsigned char) size;
  } else if (size < 65536) {
    p[h++] = 0x80 | 126;
    p[h++] = (unsigned char) (size >> 8);
    p[h++] = (unsigned char) size;
  } else {
    p[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) p[h++] = (unsigned char) ((unsigned long long) size >> (8 * i));
  }
  memcpy(p + h, mask, 4);
  h += 4;
  for (size_t i = 0; i < size; i++) p[h + i] = 'x' ^ mask[i % 4];
  return h + size;
}

static int handshake(int fd, const char *host, int port, const char *path) {
  char req[512], resp[4096];
  int n = snprintf(req, sizeof(req),
                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   path, host, port);
  if (send(fd, req, n, MSG_NOSIGNAL) != n) return -1;
  size_t got = 0;
  while (got < sizeof(resp) - 1) {
    ssize_t r = recv(fd, resp + got, 1, 0);  // byte by byte: nothing past the header is read
    if (r <= 0) return -1;
    got += r;
    resp[got] = 0;
    if (got >= 4 && memcmp(resp + got - 4, "\r\n\r\n", 4) == 0) break;
  }
  if (strncmp(resp, "HTTP/1.1 101", 12) != 0) {
    fprintf(stderr, "handshake refused: %s\n", resp);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: %s HOST PORT PATH CONNS INFLIGHT SIZE SECONDS\n", argv[0]);
    return 2;
  }
  const char *host = argv[1], *path = argv[3];
  int port = atoi(argv[2]), nconns = atoi(argv[4]), inflight = atoi(argv[5]);
  size_t size = (size_t) atol(argv[6]);
  double seconds = atof(argv[7]);
  // The client's stream is the same frame over and over: OUT holds enough
  // copies that a send from any offset within the first frame is contiguous.
  size_t flen = header_len(size) + 4 + size;
  size_t copies = (1 << 16) / flen + 2;
  size_t outlen = copies * flen;
  unsigned char *out = malloc(outlen);
  for (size_t i = 0; i < copies; i++) build_frame(out + i * flen, size);
  long long echo_len = (long long) (header_len(size) + size);  // server frames are unmasked
  static char in[1 << 16];
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
    if (handshake(fd, host, port, path) != 0) {
      fprintf(stderr, "handshake failed on connection %d\n", i);
      return 1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    conns[i].fd = fd;
    conns[i].owed = (long long) inflight * flen;
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
            long long before = c->received / echo_len;
            c->received += r;
            c->owed += (c->received / echo_len - before) * (long long) flen;
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
        size_t off = (size_t) (c->sent % (long long) flen);
        size_t room = outlen - off;
        size_t len = c->owed < (long long) room ? (size_t) c->owed : room;
        ssize_t w = send(c->fd, out + off, len, MSG_NOSIGNAL);
        if (w > 0) {
          c->owed -= w;
          c->sent += w;
          continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) errors++;
        break;
      }
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
    messages += conns[i].received / echo_len;
    close(conns[i].fd);
  }
  printf("messages %lld seconds %.3f errors %lld\n", messages, took, errors);
  return 0;
}
