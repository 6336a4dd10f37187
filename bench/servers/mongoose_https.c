// Plain-C Mongoose HTTPS hello server with Mongoose's built-in TLS 1.3
// (MG_TLS_BUILTIN), the baseline of bench/https.ts, written the way
// Mongoose's tutorials do it: mg_tls_init on every accepted connection.
//
//   PORT=8443 CERT_FILE=cert.pem KEY_FILE=key.pem ./mongoose_https
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "mongoose.h"

static volatile sig_atomic_t s_stop;
static struct mg_str s_cert, s_key;

static void on_signal(int sig) {
  (void) sig;
  s_stop = 1;
}

static void handler(struct mg_connection *c, int ev, void *ev_data) {
  if (ev == MG_EV_ACCEPT) {
    struct mg_tls_opts opts = {.cert = s_cert, .key = s_key};
    mg_tls_init(c, &opts);
  } else if (ev == MG_EV_HTTP_MSG) {
    (void) ev_data;
    mg_http_reply(c, 200, "Content-Type: application/json\r\n", "{\"message\":\"Hello, World!\"}");
  }
}

int main(void) {
  const char *port = getenv("PORT");
  char url[64];
  struct mg_mgr mgr;
  s_cert = mg_file_read(&mg_fs_posix, getenv("CERT_FILE"));
  s_key = mg_file_read(&mg_fs_posix, getenv("KEY_FILE"));
  if (s_cert.len == 0 || s_key.len == 0) {
    fprintf(stderr, "set CERT_FILE and KEY_FILE\n");
    return 1;
  }
  snprintf(url, sizeof(url), "https://127.0.0.1:%s", port ? port : "8443");
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
