// Plain-C Mongoose hello server, the baseline of bench/http.ts: the same
// answer as examples/hello.ts, written the way Mongoose's tutorials do it.
// Built from the same fetched sources as mgnet (see bench/http.ts).
//
//   PORT=8000 ./mongoose_hello
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
    (void) ev_data;
    mg_http_reply(c, 200, "Content-Type: application/json\r\n",
                  "{\"message\":\"Hello, World!\"}");
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
  printf("Listening on %s/\n", url);
  fflush(stdout);
  while (!s_stop) mg_mgr_poll(&mgr, 100);
  mg_mgr_free(&mgr);
  return 0;
}
