// Plain-C Mongoose server, the baseline of bench/http.ts: the same answers
// as mgnet's bench servers, written the way Mongoose's tutorials do it.
// Built from the same fetched sources as mgnet (see bench/http.ts).
//
//   PORT=8000 [MODE=hello|echo|static] [STATIC_ROOT=dir] ./mongoose_hello
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mongoose.h"

static volatile sig_atomic_t s_stop;

static void on_signal(int sig) {
  (void) sig;
  s_stop = 1;
}

static const char *s_mode = "hello";  // MODE: hello, echo or static
static char s_root_map[512] = "/static=.";  // STATIC_ROOT, served at /static/

static void handler(struct mg_connection *c, int ev, void *ev_data) {
  if (ev == MG_EV_HTTP_MSG) {
    struct mg_http_message *hm = (struct mg_http_message *) ev_data;
    if (strcmp(s_mode, "echo") == 0) {
      struct mg_str *ct = mg_http_get_header(hm, "Content-Type");
      mg_printf(c, "HTTP/1.1 200 OK\r\nContent-Type: %.*s\r\nContent-Length: %lu\r\n\r\n",
                ct ? (int) ct->len : 24, ct ? ct->buf : "application/octet-stream",
                (unsigned long) hm->body.len);
      mg_send(c, hm->body.buf, hm->body.len);
      c->is_resp = 0;  // a hand-written response must clear this, as mg_http_reply does
    } else if (strcmp(s_mode, "static") == 0) {
      struct mg_http_serve_opts opts = {.root_dir = s_root_map};
      mg_http_serve_dir(c, hm, &opts);
    } else {
      mg_http_reply(c, 200, "Content-Type: application/json\r\n",
                    "{\"message\":\"Hello, World!\"}");
    }
  }
}

int main(void) {
  const char *port = getenv("PORT");
  if (getenv("MODE")) s_mode = getenv("MODE");
  if (getenv("STATIC_ROOT")) snprintf(s_root_map, sizeof(s_root_map), "/static=%s", getenv("STATIC_ROOT"));
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
