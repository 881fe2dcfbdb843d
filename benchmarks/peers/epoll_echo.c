/* epoll_echo: the floor for coronet's echo benchmarks.
 *
 * A minimal raw epoll echo server in C: one thread, non-blocking sockets,
 * level-triggered epoll. Connections read into one shared buffer and write
 * it straight back; only when the peer does not take everything is the rest
 * copied into a buffer of the connection's own, EPOLLIN switched off and
 * EPOLLOUT on until it is flushed (so a slow reader cannot make the server
 * buffer without bound). An idle connection costs a 32-byte struct.
 *
 * Usage: epoll_echo --port P [--host 127.0.0.1]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 65536
#define MAX_EVENTS 256

struct conn {
  int fd;
  size_t off; /* first unsent byte in pending */
  size_t len; /* bytes in pending */
  char *pending; /* NULL unless a send was cut short */
};

static int epfd = -1;
static char shared_buf[BUF_SIZE];

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void conn_close(struct conn *c) {
  close(c->fd); /* also removes it from the epoll set */
  free(c->pending);
  free(c);
}

static int set_events(struct conn *c, unsigned events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  return epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends buf[*off, len). Returns 1 if everything went, 0 if the socket is
 * full, -1 on error. */
static int send_all(int fd, const char *buf, size_t *off, size_t len) {
  while (*off < len) {
    ssize_t n = send(fd, buf + *off, len - *off, MSG_NOSIGNAL);
    if (n > 0) {
      *off += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return 0;
    } else {
      return -1;
    }
  }
  return 1;
}

static void on_readable(struct conn *c) {
  for (;;) {
    ssize_t n = recv(c->fd, shared_buf, BUF_SIZE, 0);
    if (n == 0) {
      conn_close(c);
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      conn_close(c);
      return;
    }
    size_t off = 0;
    int r = send_all(c->fd, shared_buf, &off, (size_t)n);
    if (r < 0) {
      conn_close(c);
      return;
    }
    if (r == 0) { /* keep the rest and wait for room */
      c->len = (size_t)n - off;
      c->off = 0;
      c->pending = malloc(c->len);
      if (!c->pending) die("malloc");
      memcpy(c->pending, shared_buf + off, c->len);
      if (set_events(c, EPOLLOUT) < 0) conn_close(c);
      return;
    }
    if ((size_t)n < BUF_SIZE) return; /* drained the socket, most likely */
  }
}

static void on_writable(struct conn *c) {
  int r = send_all(c->fd, c->pending, &c->off, c->len);
  if (r < 0) {
    conn_close(c);
  } else if (r > 0) {
    free(c->pending);
    c->pending = NULL;
    c->off = c->len = 0;
    if (set_events(c, EPOLLIN | EPOLLRDHUP) < 0) conn_close(c);
  }
}

static void on_accept(int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EMFILE || errno == ENFILE) {
        perror("accept4");
        return;
      }
      die("accept4");
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = malloc(sizeof *c);
    if (!c) die("malloc");
    c->fd = fd;
    c->off = c->len = 0;
    c->pending = NULL;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      perror("epoll_ctl");
      conn_close(c);
    }
  }
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

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd < 0) die("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    fprintf(stderr, "bad --host %s\n", host);
    return 2;
  }
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  if (listen(lfd, 4096) < 0) die("listen");

  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1");
  /* The listener is told apart by a NULL data pointer. */
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) < 0) die("epoll_ctl");

  struct epoll_event events[MAX_EVENTS];
  for (;;) {
    int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      struct conn *c = events[i].data.ptr;
      if (!c) {
        on_accept(lfd);
      } else if (events[i].events & EPOLLOUT) {
        on_writable(c);
      } else if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        on_readable(c);
      }
    }
  }
}
