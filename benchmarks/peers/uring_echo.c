/* uring_echo: a raw liburing echo server, the io_uring floor for coronet's
 * echo benchmarks.
 *
 * One thread, one ring. The listener has a multishot accept armed (re-armed
 * when the kernel drops it); each connection has exactly one operation in
 * flight: a recv into its buffer, then sends of that buffer until all of it
 * went, then the next recv. Completions are reaped in batches and all new
 * submissions go in with one io_uring_submit_and_wait() per loop.
 *
 * Usage: uring_echo --port P [--host 127.0.0.1]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 65536
#define SQ_ENTRIES 4096
#define CQ_ENTRIES 65536

enum op { OP_ACCEPT = 1, OP_RECV = 2, OP_SEND = 3 };

struct conn {
  int fd;
  unsigned off; /* first unsent byte */
  unsigned len; /* bytes received */
  char buf[BUF_SIZE];
};

static struct io_uring ring;
static int listen_fd = -1;

static void die(const char *what, int err) {
  fprintf(stderr, "%s: %s\n", what, strerror(err));
  exit(1);
}

/* user_data: the conn pointer (8-byte aligned) with the op in the low bits. */
static inline uint64_t tag(struct conn *c, enum op op) { return (uint64_t)(uintptr_t)c | (uint64_t)op; }
static inline struct conn *tag_conn(uint64_t ud) { return (struct conn *)(uintptr_t)(ud & ~(uint64_t)7); }
static inline enum op tag_op(uint64_t ud) { return (enum op)(ud & 7); }

static struct io_uring_sqe *get_sqe(void) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
  while (!sqe) { /* SQ full: push what is queued and try again */
    int r = io_uring_submit(&ring);
    if (r < 0 && r != -EAGAIN && r != -EBUSY) die("io_uring_submit", -r);
    sqe = io_uring_get_sqe(&ring);
  }
  return sqe;
}

static void arm_accept(void) {
  struct io_uring_sqe *sqe = get_sqe();
  io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, OP_ACCEPT);
}

static void arm_recv(struct conn *c) {
  struct io_uring_sqe *sqe = get_sqe();
  io_uring_prep_recv(sqe, c->fd, c->buf, BUF_SIZE, 0);
  io_uring_sqe_set_data64(sqe, tag(c, OP_RECV));
}

static void arm_send(struct conn *c) {
  struct io_uring_sqe *sqe = get_sqe();
  io_uring_prep_send(sqe, c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, tag(c, OP_SEND));
}

static void conn_close(struct conn *c) {
  close(c->fd); /* nothing of this conn is in flight any more */
  free(c);
}

static void on_accept(struct io_uring_cqe *cqe) {
  if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept(); /* multishot ended */
  int fd = cqe->res;
  if (fd < 0) {
    if (fd != -EINTR && fd != -ECONNABORTED && fd != -EAGAIN) {
      fprintf(stderr, "accept: %s\n", strerror(-fd));
    }
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct conn *c = malloc(sizeof *c);
  if (!c) die("malloc", ENOMEM);
  c->fd = fd;
  c->off = c->len = 0;
  arm_recv(c);
}

static void on_recv(struct conn *c, int res) {
  if (res == -EINTR || res == -EAGAIN) {
    arm_recv(c);
  } else if (res <= 0) {
    conn_close(c); /* EOF or error */
  } else {
    c->off = 0;
    c->len = (unsigned)res;
    arm_send(c);
  }
}

static void on_send(struct conn *c, int res) {
  if (res == -EINTR || res == -EAGAIN) {
    arm_send(c);
    return;
  }
  if (res <= 0) {
    conn_close(c);
    return;
  }
  c->off += (unsigned)res;
  if (c->off < c->len) {
    arm_send(c);
  } else {
    arm_recv(c);
  }
}

static int ring_init(void) {
  struct io_uring_params p;
  /* Newest flags first; fall back on older kernels. */
  const unsigned tries[] = {
      IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER,
      IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
      IORING_SETUP_CQSIZE,
  };
  int r = -EINVAL;
  for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
    memset(&p, 0, sizeof p);
    p.flags = tries[i];
    p.cq_entries = CQ_ENTRIES;
    r = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
    if (r == 0) return 0;
  }
  return r;
}

int main(int argc, char **argv) {
  int port = -1;
  const char *host = "127.0.0.1";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) {
      port = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--host") && i + 1 < argc) {
      host = argv[++i];
    } else {
      fprintf(stderr, "usage: %s --port P [--host ADDR]\n", argv[0]);
      return 2;
    }
  }
  if (port <= 0 || port > 65535) {
    fprintf(stderr, "usage: %s --port P [--host ADDR]\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);

  listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd < 0) die("socket", errno);
  int one = 1;
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    fprintf(stderr, "bad --host %s\n", host);
    return 2;
  }
  if (bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind", errno);
  if (listen(listen_fd, 4096) < 0) die("listen", errno);

  int r = ring_init();
  if (r < 0) die("io_uring_queue_init_params", -r);
  arm_accept();

  for (;;) {
    r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) die("io_uring_submit_and_wait", -r);
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      seen++;
      uint64_t ud = io_uring_cqe_get_data64(cqe);
      switch (tag_op(ud)) {
        case OP_ACCEPT: on_accept(cqe); break;
        case OP_RECV: on_recv(tag_conn(ud), cqe->res); break;
        case OP_SEND: on_send(tag_conn(ud), cqe->res); break;
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}
