// Plain-C Mongoose TCP echo server, the native baseline of bench/net_tcp.ts:
// every byte received is sent back, the way Mongoose's examples echo
// (mg_send of the receive buffer in MG_EV_READ, then drop what was sent).
// Built from the same fetched sources as mgnet (see bench/_measure.ts).
//
//   PORT=7000 [HOSTNAME=127.0.0.1] ./mongoose_tcp_echo
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "mongoose.h"

static volatile sig_atomic_t s_stop;

static void on_signal(int sig) {
  (void) sig;
  s_stop = 1;
}

static void handler(struct mg_connection *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev == MG_EV_READ) {
    mg_send(c, c->recv.buf, c->recv.len);
    mg_iobuf_del(&c->recv, 0, c->recv.len);
  }
}

int main(void) {
  const char *port = getenv("PORT");
  const char *host = getenv("HOSTNAME");
  char url[128];
  struct mg_mgr mgr;
  snprintf(url, sizeof(url), "tcp://%s:%s", host ? host : "127.0.0.1", port ? port : "7000");
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  mg_mgr_init(&mgr);
  if (mg_listen(&mgr, url, handler, NULL) == NULL) {
    fprintf(stderr, "cannot listen on %s\n", url);
    return 1;
  }
  printf("Listening on %s/\n", url);
  fflush(stdout);
  while (!s_stop) mg_mgr_poll(&mgr, 100);
  mg_mgr_free(&mgr);
  return 0;
}
