// Plain-C Mongoose WebSocket echo, the C baseline of bench/ws.ts: every
// request is upgraded with mg_ws_upgrade, every message sent back with
// mg_ws_send, the way Mongoose's websocket-server tutorial does it. Built
// from the same fetched sources as mgnet (see bench/ws.ts).
//
//   PORT=8000 ./mongoose_ws_echo
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
  if (ev == MG_EV_HTTP_MSG) {
    mg_ws_upgrade(c, (struct mg_http_message *) ev_data, NULL);
  } else if (ev == MG_EV_WS_MSG) {
    struct mg_ws_message *wm = (struct mg_ws_message *) ev_data;
    mg_ws_send(c, wm->data.buf, wm->data.len, wm->flags & 0x0f);
  }
}

int main(void) {
  const char *port = getenv("PORT");
  char url[64];
  struct mg_mgr mgr;
  snprintf(url, sizeof(url), "http://127.0.0.1:%s", port ? port : "8000");
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  mg_mgr_init(&mgr);
  if (mg_http_listen(&mgr, url, handler, NULL) == NULL) {
    fprintf(stderr, "cannot listen on %s\n", url);
    return 1;
  }
  printf("Listening on ws://127.0.0.1:%s/\n", port ? port : "8000");
  fflush(stdout);
  while (!s_stop) mg_mgr_poll(&mgr, 100);
  mg_mgr_free(&mgr);
  return 0;
}
