/*
 * socketmap-load: a small load generator that speaks Postfix socketmap(5) (netstring requests
 * "name key", one netstring reply each), built at bench time with `cc -O2`.
 *
 * One thread, epoll, non-blocking sockets. N connections; each keeps `depth` requests in flight:
 * depth 1 is what Postfix does (send one request, wait for its reply, send the next), depth > 1 is
 * a pipelined client. Runs for warmup + duration seconds and counts only replies that arrive inside
 * the measured window. Prints one JSON object: queries/s, latency percentiles, reply classes, and
 * its own CPU use over the window (getrusage), so a reader can see that the client is not the limit.
 *
 *   --host A --port P | --unix PATH    where the server listens (TCP host must be an IPv4 address)
 *   --connections N                    default 1
 *   --depth D                          requests in flight per connection, default 1 (closed loop)
 *   --duration S --warmup S            seconds, defaults 5 and 1
 *   --name NAME                        socketmap name, default "postfix"
 *   --key KEY                          fixed key, default "example.com"
 *   --key-format FMT --keys K          key = FMT with %u replaced by a number in [0, K):
 *   --random                           ... uniformly random per request (default: per connection)
 *   --once                             each connection sends exactly one request (key number =
 *                                      connection number) and closes; all connect at once. Ends
 *                                      when every connection has its reply or --timeout passes.
 *   --timeout S                        --once overall limit, default 30
 *   --expect PREFIX                    replies not starting with PREFIX are counted as "unexpected"
 *
 * Every loop is bounded by time (the window, a 3 s drain, or --timeout).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEPTH 256
#define RBUF 8192
#define REQ_MAX 300
#define DRAIN_NS 3000000000ull

/* Log-linear latency histogram in nanoseconds: 128 sub-buckets per power of two (< 1% error). */
#define SUB 128
#define NBUCKETS (SUB * 58)
static uint64_t hist[NBUCKETS];
static uint64_t hist_count, hist_max;

static int bucket_of(uint64_t ns) {
  if (ns < SUB) return (int)ns;
  int msb = 63 - __builtin_clzll(ns);
  int shift = msb - 7;
  return SUB + shift * SUB + (int)((ns >> shift) - SUB);
}
static uint64_t bucket_value(int b) {
  if (b < SUB) return (uint64_t)b;
  int shift = (b - SUB) / SUB;
  uint64_t base = (uint64_t)(SUB + (b - SUB) % SUB) << shift;
  return base + (((uint64_t)1 << shift) >> 1); /* midpoint */
}
static void record(uint64_t ns) {
  hist[bucket_of(ns)]++;
  hist_count++;
  if (ns > hist_max) hist_max = ns;
}
static double percentile_us(double p) {
  if (hist_count == 0) return 0;
  uint64_t want = (uint64_t)(p * (double)hist_count);
  if (want >= hist_count) want = hist_count - 1;
  uint64_t seen = 0;
  for (int b = 0; b < NBUCKETS; b++) {
    seen += hist[b];
    if (seen > want) return (double)bucket_value(b) / 1000.0;
  }
  return (double)hist_max / 1000.0;
}

struct conn {
  int fd;
  int connected, closed, done_once;
  uint32_t index;          /* connection number */
  uint8_t rbuf[RBUF];
  size_t rlen;
  char *wbuf;              /* depth * REQ_MAX bytes */
  size_t wlen;             /* bytes queued but not yet written */
  uint64_t sent_at[MAX_DEPTH];
  int head, inflight;      /* ring of send times of requests in flight */
  int want_out;
};

static struct {
  const char *host, *unix_path, *name, *key, *key_format, *expect;
  int port, connections, depth, random_keys, once;
  unsigned keys;
  double duration, warmup, timeout;
} opt = {"127.0.0.1", NULL, "postfix", "example.com", NULL, NULL, 0, 1, 1, 0, 0, 1, 5, 1, 30};

static int epfd, open_count;
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t window_start, window_end;
static uint64_t replies_ok, replies_notfound, replies_perm, replies_temp, replies_other, unexpected;
static uint64_t conn_errors, protocol_errors, measured, sent_total, replies_total;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static uint64_t xorshift(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545F4914F6CDD1Dull;
}
static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}
static void die(const char *what) {
  fprintf(stderr, "socketmap-load: %s: %s\n", what, strerror(errno));
  exit(2);
}

/* Appends one framed request to c->wbuf. */
static void queue_request(struct conn *c) {
  char payload[REQ_MAX - 12];
  int n;
  if (opt.key_format) {
    char key[256];
    unsigned k = opt.once ? c->index : opt.random_keys ? (unsigned)(xorshift() % opt.keys) : c->index % opt.keys;
    snprintf(key, sizeof key, opt.key_format, k);
    n = snprintf(payload, sizeof payload, "%s %s", opt.name, key);
  } else {
    n = snprintf(payload, sizeof payload, "%s %s", opt.name, opt.key);
  }
  int m = snprintf(c->wbuf + c->wlen, (size_t)opt.depth * REQ_MAX - c->wlen, "%d:%s,", n, payload);
  c->wlen += (size_t)m;
  c->sent_at[(c->head + c->inflight) % MAX_DEPTH] = now_ns();
  c->inflight++;
  sent_total++;
}

static void set_events(struct conn *c, int out) {
  if (c->want_out == out) return;
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
  c->want_out = out;
}

static void close_conn(struct conn *c) {
  if (c->closed) return;
  c->closed = 1;
  open_count--;
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
}

static void flush_writes(struct conn *c) {
  while (c->wlen > 0) {
    ssize_t w = write(c->fd, c->wbuf, c->wlen);
    if (w < 0) {
      if (errno == EAGAIN) break;
      conn_errors++;
      close_conn(c);
      return;
    }
    memmove(c->wbuf, c->wbuf + w, c->wlen - (size_t)w);
    c->wlen -= (size_t)w;
  }
  set_events(c, c->wlen > 0);
}

static void classify(const uint8_t *p, size_t n) {
  if (n >= 3 && memcmp(p, "OK ", 3) == 0) replies_ok++;
  else if (n >= 8 && memcmp(p, "NOTFOUND", 8) == 0) replies_notfound++;
  else if (n >= 4 && memcmp(p, "PERM", 4) == 0) replies_perm++;
  else if (n >= 4 && memcmp(p, "TEMP", 4) == 0) replies_temp++;
  else replies_other++;
  if (opt.expect) {
    size_t e = strlen(opt.expect);
    if (n < e || memcmp(p, opt.expect, e) != 0) unexpected++;
  }
}

/* Consumes complete netstring replies from c->rbuf; returns how many. */
static int parse_replies(struct conn *c, uint64_t t, int sending) {
  size_t off = 0;
  int got = 0;
  for (;;) {
    size_t i = off, len = 0;
    while (i < c->rlen && c->rbuf[i] >= '0' && c->rbuf[i] <= '9' && i - off < 10) len = len * 10 + (c->rbuf[i++] - '0');
    if (i >= c->rlen) break;
    if (c->rbuf[i] != ':' || i == off) { protocol_errors++; close_conn(c); return got; }
    if (i + 1 + len + 1 > c->rlen) {
      if (len + 12 > RBUF) { protocol_errors++; close_conn(c); return got; }
      break;
    }
    if (c->rbuf[i + 1 + len] != ',') { protocol_errors++; close_conn(c); return got; }
    if (c->inflight == 0) { protocol_errors++; close_conn(c); return got; }
    uint64_t sent = c->sent_at[c->head];
    c->head = (c->head + 1) % MAX_DEPTH;
    c->inflight--;
    replies_total++;
    int in_window = opt.once || (t >= window_start && t < window_end);
    if (in_window) {
      measured++;
      record(t - sent);
      classify(c->rbuf + i + 1, len);
    }
    off = i + 1 + len + 1;
    got++;
    if (sending) queue_request(c);
  }
  memmove(c->rbuf, c->rbuf + off, c->rlen - off);
  c->rlen -= off;
  return got;
}

static void on_readable(struct conn *c, uint64_t t, int sending) {
  for (int rounds = 0; rounds < 64; rounds++) {
    ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen);
    if (r < 0) {
      if (errno == EAGAIN) break;
      conn_errors++;
      close_conn(c);
      return;
    }
    if (r == 0) {
      if (!(opt.once && c->done_once)) conn_errors++;
      close_conn(c);
      return;
    }
    c->rlen += (size_t)r;
    parse_replies(c, t, sending && !opt.once);
    if (c->closed) return;
    if ((size_t)r < RBUF) break;
  }
  if (opt.once && c->inflight == 0 && !c->done_once) {
    c->done_once = 1;
    close_conn(c);
    return;
  }
  if (c->wlen > 0) flush_writes(c);
}

static void start_conn(struct conn *c) {
  c->connected = 1;
  int depth = opt.once ? 1 : opt.depth;
  for (int i = 0; i < depth; i++) queue_request(c);
  flush_writes(c);
}

static void open_conn(struct conn *c, struct sockaddr *sa, socklen_t salen) {
  c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die("socket");
  c->wbuf = malloc((size_t)opt.depth * REQ_MAX);
  if (!c->wbuf) die("malloc");
  open_count++;
  if (sa->sa_family == AF_INET) {
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  c->want_out = 1;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl add");
  if (connect(c->fd, sa, salen) < 0 && errno != EINPROGRESS) {
    conn_errors++;
    close_conn(c);
  }
}

static void usage(void) {
  fprintf(stderr, "usage: socketmap-load (--port P [--host A] | --unix PATH) [--connections N] [--depth D] "
                  "[--duration S] [--warmup S] [--name N] [--key K | --key-format F --keys K [--random|--once]] "
                  "[--timeout S] [--expect PREFIX]\n");
  exit(2);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(s) (strcmp(a, s) == 0 && v && ++i)
    if (ARG("--host")) opt.host = v;
    else if (ARG("--port")) opt.port = atoi(v);
    else if (ARG("--unix")) opt.unix_path = v;
    else if (ARG("--connections")) opt.connections = atoi(v);
    else if (ARG("--depth")) opt.depth = atoi(v);
    else if (ARG("--duration")) opt.duration = atof(v);
    else if (ARG("--warmup")) opt.warmup = atof(v);
    else if (ARG("--name")) opt.name = v;
    else if (ARG("--key")) opt.key = v;
    else if (ARG("--key-format")) opt.key_format = v;
    else if (ARG("--keys")) opt.keys = (unsigned)strtoul(v, NULL, 10);
    else if (ARG("--timeout")) opt.timeout = atof(v);
    else if (ARG("--expect")) opt.expect = v;
    else if (strcmp(a, "--random") == 0) opt.random_keys = 1;
    else if (strcmp(a, "--once") == 0) opt.once = 1;
    else usage();
#undef ARG
  }
  if (opt.connections < 1 || opt.connections > 100000 || opt.depth < 1 || opt.depth > MAX_DEPTH || opt.keys < 1) usage();
  if (!opt.unix_path && opt.port <= 0) usage();
  if (opt.key_format && (strstr(opt.key_format, "%u") == NULL || strchr(strstr(opt.key_format, "%u") + 1, '%'))) usage();

  /* Enough descriptors for every connection. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  rng ^= (uint64_t)getpid() << 17;

  struct sockaddr_storage ss;
  socklen_t salen;
  memset(&ss, 0, sizeof ss);
  if (opt.unix_path) {
    struct sockaddr_un *un = (struct sockaddr_un *)&ss;
    un->sun_family = AF_UNIX;
    if (strlen(opt.unix_path) >= sizeof un->sun_path) usage();
    strcpy(un->sun_path, opt.unix_path);
    salen = sizeof *un;
  } else {
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &in->sin_addr) != 1) usage();
    salen = sizeof *in;
  }

  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1");
  struct conn *conns = calloc((size_t)opt.connections, sizeof *conns);
  if (!conns) die("calloc");

  uint64_t t0 = now_ns();
  window_start = t0 + (uint64_t)(opt.warmup * 1e9);
  window_end = window_start + (uint64_t)(opt.duration * 1e9);
  uint64_t hard_end = opt.once ? t0 + (uint64_t)(opt.timeout * 1e9) : window_end + DRAIN_NS;
  for (int i = 0; i < opt.connections; i++) {
    conns[i].index = (uint32_t)i;
    open_conn(&conns[i], (struct sockaddr *)&ss, salen);
  }

  double cpu_start = -1, cpu_end = -1;
  struct epoll_event events[512];
  for (;;) {
    uint64_t t = now_ns();
    if (cpu_start < 0 && t >= window_start) cpu_start = cpu_seconds();
    if (cpu_end < 0 && !opt.once && t >= window_end) cpu_end = cpu_seconds();
    if (t >= hard_end) break;
    if (open_count == 0) break;
    if (!opt.once && t >= window_end) {
      /* Draining: done once no connection waits for a reply. */
      int busy = 0;
      for (int i = 0; i < opt.connections && !busy; i++) busy = !conns[i].closed && conns[i].inflight > 0;
      if (!busy) break;
    }
    int n = epoll_wait(epfd, events, 512, 10);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    t = now_ns();
    int sending = opt.once || t < window_end;
    for (int k = 0; k < n; k++) {
      struct conn *c = events[k].data.ptr;
      if (c->closed) continue;
      if (!c->connected) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          conn_errors++;
          close_conn(c);
          continue;
        }
        if (events[k].events & (EPOLLOUT | EPOLLIN)) start_conn(c);
        continue;
      }
      if (events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c, t, sending);
      if (!c->closed && (events[k].events & EPOLLOUT)) flush_writes(c);
    }
  }
  uint64_t t_end = now_ns();
  if (cpu_start < 0) cpu_start = cpu_seconds();
  if (cpu_end < 0) cpu_end = cpu_seconds();
  uint64_t unanswered = 0;
  if (opt.once) {
    for (int i = 0; i < opt.connections; i++) if (!conns[i].done_once) unanswered++;
  }
  for (int i = 0; i < opt.connections; i++) {
    close_conn(&conns[i]);
    free(conns[i].wbuf);
  }
  double window_s = opt.once ? (double)(t_end - t0) / 1e9 : opt.duration;
  printf("{\"connections\":%d,\"depth\":%d,\"mode\":\"%s\",\"seconds\":%.3f,\"queries\":%llu,\"qps\":%.0f,"
         "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
         "\"replies\":{\"ok\":%llu,\"notfound\":%llu,\"perm\":%llu,\"temp\":%llu,\"other\":%llu},"
         "\"unexpected\":%llu,\"unanswered\":%llu,\"connection_errors\":%llu,\"protocol_errors\":%llu,"
         "\"client_cpu_s\":%.3f,\"client_cpu_pct\":%.1f}\n",
         opt.connections, opt.once ? 1 : opt.depth, opt.once ? "once" : opt.depth > 1 ? "pipelined" : "closed-loop",
         window_s, (unsigned long long)measured, window_s > 0 ? (double)measured / window_s : 0.0,
         percentile_us(0.50), percentile_us(0.99), percentile_us(0.999), (double)hist_max / 1000.0,
         (unsigned long long)replies_ok, (unsigned long long)replies_notfound, (unsigned long long)replies_perm,
         (unsigned long long)replies_temp, (unsigned long long)replies_other, (unsigned long long)unexpected,
         (unsigned long long)unanswered, (unsigned long long)conn_errors, (unsigned long long)protocol_errors,
         cpu_end - cpu_start, window_s > 0 ? 100.0 * (cpu_end - cpu_start) / window_s : 0.0);
  free(conns);
  return 0;
}
