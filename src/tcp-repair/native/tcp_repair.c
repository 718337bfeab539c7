/*
 * coat's TCP_REPAIR boundary: a narrow N-API addon in C, shaped after CRIU's soccr
 * (soccr/soccr.h, soccr.c). Every function is synchronous, does one kernel job, and on failure
 * throws an Error carrying `errno` (number) and `syscall` (string) so that the TypeScript side
 * (src/tcp-repair/errors.ts) maps it to a typed CoatError. No policy lives here.
 *
 * Sequences (documented again in src/tcp-repair/socket.ts):
 *   pause -> save:     repairOn(fd) -> save(fd)                     (traffic to the socket blocked first)
 *   restore -> resume: tcpSocket(netns) -> restore(fd, img) -> repairOff(fd) -> sendUnsent(fd, bytes)
 *   dispose silently:  repairOn(fd) -> close(fd)                    (tcp_disconnect in repair: no FIN/RST)
 *
 * Kernel interfaces: tcp(7) TCP_REPAIR*, linux/tcp.h; pidfd_open(2) (syscall 434), pidfd_getfd(2)
 * (syscall 438); setns(2); proc(5) is read from TypeScript.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>

#ifndef SOL_TCP
#define SOL_TCP IPPROTO_TCP /* glibc defines it in netinet/tcp.h, which clashes with linux/tcp.h */
#endif
#ifndef SOL_IP
#define SOL_IP IPPROTO_IP
#endif
#ifndef SOL_IPV6
#define SOL_IPV6 IPPROTO_IPV6
#endif
#include <node_api.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef IP_FREEBIND
#define IP_FREEBIND 15
#endif
#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif

/* TCP option kinds used by TCP_REPAIR_OPTIONS (RFC 9293 §3.1, RFC 7323, RFC 2018). */
#define COAT_TCPOPT_MAXSEG 2
#define COAT_TCPOPT_WINDOW 3
#define COAT_TCPOPT_SACK_PERM 4
#define COAT_TCPOPT_TIMESTAMP 8

/* ---- error plumbing ---------------------------------------------------------------------- */

/* Throws Error(message) with .errno and .syscall; always returns NULL for `return throw_errno(...)`. */
static napi_value throw_errno(napi_env env, int err, const char *syscall_name) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", syscall_name, strerror(err));
  napi_value message, error, errno_v, syscall_v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &error);
  napi_create_int32(env, err, &errno_v);
  napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &syscall_v);
  napi_set_named_property(env, error, "errno", errno_v);
  napi_set_named_property(env, error, "syscall", syscall_v);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

#define ARGS(n)                                                            \
  size_t argc = (n);                                                       \
  napi_value argv[(n) > 0 ? (n) : 1];                                      \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok)     \
    return NULL;

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

static int get_u32_prop(napi_env env, napi_value obj, const char *name, uint32_t *out) {
  napi_value v;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return -1;
  return napi_get_value_uint32(env, v, out) == napi_ok ? 0 : -1;
}

static void set_u32(napi_env env, napi_value obj, const char *name, uint32_t val) {
  napi_value v;
  napi_create_uint32(env, val, &v);
  napi_set_named_property(env, obj, name, v);
}

static void set_i32(napi_env env, napi_value obj, const char *name, int32_t val) {
  napi_value v;
  napi_create_int32(env, val, &v);
  napi_set_named_property(env, obj, name, v);
}

static void set_u64(napi_env env, napi_value obj, const char *name, uint64_t val) {
  napi_value v;
  napi_create_bigint_uint64(env, val, &v);
  napi_set_named_property(env, obj, name, v);
}

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* ---- process and namespace plumbing ------------------------------------------------------- */

/* pidfdOpen(pid) -> fd. pidfd_open(2): a stable handle, immune to pid reuse. */
static napi_value pidfd_open_js(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t pid;
  if (get_i32(env, argv[0], &pid) || pid <= 0) return throw_type(env, "pid must be a positive integer");
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return throw_errno(env, errno, "pidfd_open");
  napi_value r;
  napi_create_int32(env, fd, &r);
  return r;
}

/* pidfdGetfd(pidfd, targetfd) -> fd: a duplicate of another process' descriptor (pidfd_getfd(2)). */
static napi_value pidfd_getfd_js(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t pidfd, target;
  if (get_i32(env, argv[0], &pidfd) || get_i32(env, argv[1], &target)) return throw_type(env, "pidfd and fd must be integers");
  int fd = (int)syscall(SYS_pidfd_getfd, pidfd, target, 0);
  if (fd < 0) return throw_errno(env, errno, "pidfd_getfd");
  napi_value r;
  napi_create_int32(env, fd, &r);
  return r;
}

static napi_value close_js(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  if (close(fd) < 0) return throw_errno(env, errno, "close");
  return undefined(env);
}

/*
 * SO_DOMAIN/SO_TYPE/SO_PROTOCOL of fd (socket(7)) into *kind and a new JS object { domain, type,
 * protocol }; NULL with a pending exception when a getsockopt fails.
 */
struct socket_kind { int domain, type, protocol; };
static napi_value socket_kind_object(napi_env env, int fd, struct socket_kind *k) {
  const struct { int opt; int *out; const char *what; } opts[] = {
    { SO_DOMAIN, &k->domain, "getsockopt(SO_DOMAIN)" },
    { SO_TYPE, &k->type, "getsockopt(SO_TYPE)" },
    { SO_PROTOCOL, &k->protocol, "getsockopt(SO_PROTOCOL)" },
  };
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
    socklen_t len = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, opts[i].opt, opts[i].out, &len) < 0) {
      throw_errno(env, errno, opts[i].what);
      return NULL;
    }
  }
  napi_value r;
  napi_create_object(env, &r);
  set_i32(env, r, "domain", k->domain);
  set_i32(env, r, "type", k->type);
  set_i32(env, r, "protocol", k->protocol);
  return r;
}

/* socketKind(fd) -> { domain, type, protocol }: SO_DOMAIN/SO_TYPE/SO_PROTOCOL (socket(7)). */
static napi_value socket_kind_js(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  struct socket_kind k;
  return socket_kind_object(env, fd, &k);
}

/*
 * tcpSocket(netnsPath | null, family) -> fd. A new TCP socket created inside the network namespace
 * at netnsPath (e.g. /run/netns/NAME): setns(2) on the calling thread, socket(2), setns back. A
 * socket belongs to the namespace it was created in for life, so bind/connect later need no switch.
 * Chosen over spawning `ip netns exec` helpers: no process start on the restore path, and the fd
 * stays in the agent, which must keep it until resume. Node runs JS on one thread and this call is
 * synchronous, so no other JS runs while the thread is in the other namespace.
 */
static napi_value tcp_socket_js(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t family;
  if (get_i32(env, argv[1], &family) || (family != 4 && family != 6)) return throw_type(env, "family must be 4 or 6");
  napi_valuetype t;
  napi_typeof(env, argv[0], &t);
  int home = -1, target = -1;
  if (t == napi_string) {
    char path[512];
    size_t n;
    if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &n) != napi_ok || n >= sizeof path - 1)
      return throw_type(env, "netns path too long");
    target = open(path, O_RDONLY | O_CLOEXEC);
    if (target < 0) return throw_errno(env, errno, "open(netns)");
    home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0) { int e = errno; close(target); return throw_errno(env, e, "open(/proc/thread-self/ns/net)"); }
    if (setns(target, CLONE_NEWNET) < 0) { int e = errno; close(target); close(home); return throw_errno(env, e, "setns"); }
  } else if (t != napi_null && t != napi_undefined) {
    return throw_type(env, "netns must be a path or null");
  }
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
  int err = errno;
  if (home >= 0) {
    /* Going home cannot fail for a namespace we were in a moment ago; if it did, this thread would
       run JS in the wrong namespace, so treat it as fatal rather than continue silently. */
    if (setns(home, CLONE_NEWNET) < 0) abort();
    close(home);
    close(target);
  }
  if (fd < 0) return throw_errno(env, err, "socket");
  napi_value r;
  napi_create_int32(env, fd, &r);
  return r;
}

/* ---- repair mode -------------------------------------------------------------------------- */

static int set_int(int fd, int level, int opt, int val) {
  return setsockopt(fd, level, opt, &val, sizeof val);
}

/* repairOn(fd) / repairOff(fd, windowProbe=true): TCP_REPAIR 1 / 0 (or -1: off without probe). */
static napi_value repair_on_js(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  if (set_int(fd, SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON) < 0) return throw_errno(env, errno, "setsockopt(TCP_REPAIR, 1)");
  return undefined(env);
}

/*
 * setWindow(fd, { sndWl1, sndWnd, maxWindow, rcvWnd, rcvWup }): TCP_REPAIR_WINDOW on a socket in
 * repair mode. Repair mode alone does not silence a socket: its timers still transmit (a tail loss
 * probe or the pacing timer sends never-sent data, the retransmit timer resends), so a saved
 * source is quiesced by a send window of zero (no new data leaves) and given its window back when
 * a rollback thaws it. CRIU locks the connection with netfilter rules instead.
 */
static napi_value set_window_js(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  uint32_t snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup;
  napi_value w = argv[1];
  if (get_u32_prop(env, w, "sndWl1", &snd_wl1) || get_u32_prop(env, w, "sndWnd", &snd_wnd) ||
      get_u32_prop(env, w, "maxWindow", &max_window) || get_u32_prop(env, w, "rcvWnd", &rcv_wnd) ||
      get_u32_prop(env, w, "rcvWup", &rcv_wup))
    return throw_type(env, "window needs sndWl1, sndWnd, maxWindow, rcvWnd, rcvWup (unsigned 32-bit)");
  struct tcp_repair_window win = { .snd_wl1 = snd_wl1, .snd_wnd = snd_wnd, .max_window = max_window, .rcv_wnd = rcv_wnd, .rcv_wup = rcv_wup };
  if (setsockopt(fd, SOL_TCP, TCP_REPAIR_WINDOW, &win, sizeof win) < 0) return throw_errno(env, errno, "setsockopt(TCP_REPAIR_WINDOW)");
  return undefined(env);
}

static napi_value repair_off_js(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  bool probe = true;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t == napi_boolean) napi_get_value_bool(env, argv[1], &probe);
  if (set_int(fd, SOL_TCP, TCP_REPAIR, probe ? TCP_REPAIR_OFF : TCP_REPAIR_OFF_NO_WP) < 0)
    return throw_errno(env, errno, "setsockopt(TCP_REPAIR, 0)");
  return undefined(env);
}

/* ---- addresses ---------------------------------------------------------------------------- */

static void set_addr(napi_env env, napi_value obj, const char *addr_name, const char *port_name, const struct sockaddr_storage *ss) {
  char buf[INET6_ADDRSTRLEN] = "";
  uint16_t port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &s->sin_addr, buf, sizeof buf);
    port = ntohs(s->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof buf);
    port = ntohs(s->sin6_port);
  }
  napi_value v;
  napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, addr_name, v);
  set_u32(env, obj, port_name, port);
}

/* Parses {addr, port} properties into a sockaddr of the given family; -1 on bad input. */
static int get_addr(napi_env env, napi_value obj, const char *addr_name, const char *port_name, int family,
                    struct sockaddr_storage *ss, socklen_t *len) {
  napi_value v;
  char buf[INET6_ADDRSTRLEN + 1];
  size_t n;
  uint32_t port;
  if (napi_get_named_property(env, obj, addr_name, &v) != napi_ok) return -1;
  if (napi_get_value_string_utf8(env, v, buf, sizeof buf, &n) != napi_ok) return -1;
  if (get_u32_prop(env, obj, port_name, &port) || port > 65535) return -1;
  memset(ss, 0, sizeof *ss);
  if (family == 4) {
    struct sockaddr_in *s = (struct sockaddr_in *)ss;
    s->sin_family = AF_INET;
    s->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, buf, &s->sin_addr) != 1) return -1;
    *len = sizeof *s;
  } else {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, buf, &s->sin6_addr) != 1) return -1;
    *len = sizeof *s;
  }
  return 0;
}

/*
 * describeSocket(fd) -> { domain, type, protocol, state, localAddress, localPort, remoteAddress,
 * remotePort }: what /proc/net/tcp would say of one socket, asked of the socket itself
 * (SO_DOMAIN/SO_TYPE/SO_PROTOCOL, TCP_INFO's tcpi_state, getsockname/getpeername). Reading
 * /proc/PID/net/tcp walks the whole established hash table (3-8 ms here for a dozen sockets),
 * inside the dump's frozen window; this takes microseconds. Not TCP: state 0, no addresses.
 * Not connected (a listener): the remote address is the family's any address, port 0, as /proc says.
 */
static napi_value describe_socket_js(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  struct socket_kind k;
  napi_value r = socket_kind_object(env, fd, &k);
  if (r == NULL) return NULL;
  int domain = k.domain, type = k.type, protocol = k.protocol;
  uint32_t state = 0;
  if ((domain == AF_INET || domain == AF_INET6) && type == SOCK_STREAM && protocol == IPPROTO_TCP) {
    struct tcp_info ti;
    memset(&ti, 0, sizeof ti);
    socklen_t len = sizeof ti;
    if (getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len) < 0) return throw_errno(env, errno, "getsockopt(TCP_INFO)");
    state = ti.tcpi_state;
    struct sockaddr_storage local, remote;
    socklen_t alen = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &alen) < 0) return throw_errno(env, errno, "getsockname");
    alen = sizeof remote;
    if (getpeername(fd, (struct sockaddr *)&remote, &alen) < 0) {
      if (errno != ENOTCONN) return throw_errno(env, errno, "getpeername");
      memset(&remote, 0, sizeof remote);
      remote.ss_family = (sa_family_t)domain;
    }
    set_addr(env, r, "localAddress", "localPort", &local);
    set_addr(env, r, "remoteAddress", "remotePort", &remote);
  }
  set_u32(env, r, "state", state);
  return r;
}

/* ---- save (soccr: libsoccr_save) ---------------------------------------------------------- */

static int queue_seq(int fd, int queue, uint32_t *seq) {
  if (set_int(fd, SOL_TCP, TCP_REPAIR_QUEUE, queue) < 0) return -1;
  socklen_t len = sizeof *seq;
  return getsockopt(fd, SOL_TCP, TCP_QUEUE_SEQ, seq, &len);
}

/* Reads a whole queue with MSG_PEEK (nothing is consumed); soccr's get_queue. */
static int peek_queue(int fd, int queue, uint8_t *buf, uint32_t len) {
  if (len == 0) return 0;
  if (set_int(fd, SOL_TCP, TCP_REPAIR_QUEUE, queue) < 0) return -1;
  ssize_t n = recv(fd, buf, (size_t)len + 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) return -1;
  if ((uint32_t)n != len) { errno = EIO; return -1; }
  return 0;
}

static void free_buffer(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  free(data);
}

/*
 * save(fd) -> SocketState. Precondition: the socket is in repair mode and nothing reaches it (the
 * switches hold its packets), so the queues do not change while they are read.
 */
static napi_value save_js(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");

  struct tcp_info ti;
  socklen_t len = sizeof ti;
  memset(&ti, 0, sizeof ti);
  if (getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len) < 0) return throw_errno(env, errno, "getsockopt(TCP_INFO)");

  struct sockaddr_storage local, remote;
  socklen_t alen = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &alen) < 0) return throw_errno(env, errno, "getsockname");
  alen = sizeof remote;
  if (getpeername(fd, (struct sockaddr *)&remote, &alen) < 0) return throw_errno(env, errno, "getpeername");

  int inq, outq, unsq;
  if (ioctl(fd, SIOCINQ, &inq) < 0) return throw_errno(env, errno, "ioctl(SIOCINQ)");
  if (ioctl(fd, SIOCOUTQ, &outq) < 0) return throw_errno(env, errno, "ioctl(SIOCOUTQ)");
  if (ioctl(fd, SIOCOUTQNSD, &unsq) < 0) return throw_errno(env, errno, "ioctl(SIOCOUTQNSD)");

  uint32_t inq_seq, outq_seq;
  if (queue_seq(fd, TCP_RECV_QUEUE, &inq_seq) < 0) return throw_errno(env, errno, "getsockopt(TCP_QUEUE_SEQ, recv)");
  if (queue_seq(fd, TCP_SEND_QUEUE, &outq_seq) < 0) return throw_errno(env, errno, "getsockopt(TCP_QUEUE_SEQ, send)");

  int mss;
  len = sizeof mss;
  if (getsockopt(fd, SOL_TCP, TCP_MAXSEG, &mss, &len) < 0) return throw_errno(env, errno, "getsockopt(TCP_MAXSEG)");
  uint32_t timestamp = 0;
  len = sizeof timestamp;
  if (getsockopt(fd, SOL_TCP, TCP_TIMESTAMP, &timestamp, &len) < 0) return throw_errno(env, errno, "getsockopt(TCP_TIMESTAMP)");

  struct tcp_repair_window win;
  memset(&win, 0, sizeof win);
  len = sizeof win;
  bool has_window = getsockopt(fd, SOL_TCP, TCP_REPAIR_WINDOW, &win, &len) == 0;

  int sndbuf, rcvbuf;
  len = sizeof sndbuf;
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) < 0) return throw_errno(env, errno, "getsockopt(SO_SNDBUF)");
  len = sizeof rcvbuf;
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len) < 0) return throw_errno(env, errno, "getsockopt(SO_RCVBUF)");

  uint8_t *sendq = malloc(outq > 0 ? (size_t)outq + 1 : 1);
  uint8_t *recvq = malloc(inq > 0 ? (size_t)inq + 1 : 1);
  if (!sendq || !recvq) { free(sendq); free(recvq); return throw_errno(env, ENOMEM, "malloc"); }
  if (peek_queue(fd, TCP_SEND_QUEUE, sendq, (uint32_t)outq) < 0) { int e = errno; free(sendq); free(recvq); return throw_errno(env, e, "recv(MSG_PEEK, send queue)"); }
  if (peek_queue(fd, TCP_RECV_QUEUE, recvq, (uint32_t)inq) < 0) { int e = errno; free(sendq); free(recvq); return throw_errno(env, e, "recv(MSG_PEEK, recv queue)"); }
  set_int(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);

  napi_value r, b;
  napi_create_object(env, &r);
  set_u32(env, r, "family", local.ss_family == AF_INET6 ? 6 : 4);
  set_u32(env, r, "state", ti.tcpi_state);
  set_addr(env, r, "localAddress", "localPort", &local);
  set_addr(env, r, "remoteAddress", "remotePort", &remote);
  set_u32(env, r, "sendSeq", outq_seq);
  set_u32(env, r, "recvSeq", inq_seq);
  set_u32(env, r, "unsentLength", (uint32_t)unsq);
  set_u32(env, r, "mss", (uint32_t)mss);
  set_u32(env, r, "options", ti.tcpi_options);
  set_u32(env, r, "sndWscale", ti.tcpi_snd_wscale);
  set_u32(env, r, "rcvWscale", ti.tcpi_rcv_wscale);
  set_u32(env, r, "timestamp", timestamp);
  set_u32(env, r, "hasWindow", has_window ? 1 : 0);
  set_u32(env, r, "sndWl1", win.snd_wl1);
  set_u32(env, r, "sndWnd", win.snd_wnd);
  set_u32(env, r, "maxWindow", win.max_window);
  set_u32(env, r, "rcvWnd", win.rcv_wnd);
  set_u32(env, r, "rcvWup", win.rcv_wup);
  set_u32(env, r, "sndbuf", (uint32_t)sndbuf);
  set_u32(env, r, "rcvbuf", (uint32_t)rcvbuf);
  set_u64(env, r, "bytesAcked", ti.tcpi_bytes_acked);
  set_u64(env, r, "bytesReceived", ti.tcpi_bytes_received);
  napi_create_external_buffer(env, (size_t)(outq > 0 ? outq : 0), sendq, free_buffer, NULL, &b);
  napi_set_named_property(env, r, "sendQueue", b);
  napi_create_external_buffer(env, (size_t)(inq > 0 ? inq : 0), recvq, free_buffer, NULL, &b);
  napi_set_named_property(env, r, "recvQueue", b);
  return r;
}

/* ---- restore (soccr: libsoccr_restore) ---------------------------------------------------- */

/*
 * Sets a socket buffer limit to `bytes` as the kernel will hold it (sk_sndbuf / sk_rcvbuf).
 * setsockopt doubles what it is given for bookkeeping overhead (socket(7)), so it is given half.
 * SO_*BUFFORCE (CAP_NET_ADMIN) passes the net.core.[wr]mem_max cap, as CRIU's restore does; without
 * the capability the capped SO_*BUF is the best there is.
 */
static int set_buffer(int fd, int force_opt, int opt, uint32_t bytes) {
  int half = bytes / 2 > INT32_MAX / 2 ? INT32_MAX / 2 : (int)(bytes / 2);
  if (set_int(fd, SOL_SOCKET, force_opt, half) == 0) return 0;
  if (errno != EPERM) return -1;
  return set_int(fd, SOL_SOCKET, opt, half);
}

/*
 * Raises SO_SNDBUF so that `more` bytes fit on top of what the send queue already charges
 * (SK_MEMINFO_WMEM_QUEUED: skb truesize, data plus per-skb overhead). tcp_sendmsg allocates a new
 * skb only while sk_wmem_queued < sk_sndbuf (sk_stream_memory_free), so this is what lets a
 * non-blocking write take everything without an ACK freeing anything first. 0 or -1 (errno).
 */
static int grow_sndbuf(int fd, size_t more) {
  uint32_t mem[SK_MEMINFO_VARS];
  socklen_t len = sizeof mem;
  memset(mem, 0, sizeof mem);
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) < 0) return -1;
  uint64_t want = (uint64_t)mem[SK_MEMINFO_WMEM_QUEUED] + 2 * (uint64_t)more + 65536;
  if (want <= mem[SK_MEMINFO_SNDBUF]) want = 2 * (uint64_t)mem[SK_MEMINFO_SNDBUF];
  if (want > INT32_MAX) want = INT32_MAX;
  return set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, (uint32_t)want);
}

/* How many times a write that the buffer refuses may grow the buffer and try again. */
#define GROW_ATTEMPTS 4

/*
 * Writes len bytes to the socket without ever waiting: into a repair queue (the kernel takes them
 * as received / as sent-unacked) or, with repair off, through the normal path. Returns the number
 * of bytes the kernel took (len unless it refused), or -1 with errno for a hard error.
 * - EAGAIN (the send buffer is charged full; nothing will free it, ACKs are held or, in repair
 *   mode, never come): grow SO_SNDBUF by what is left and try again, a few times.
 * - ENOMEM (repair receive queue: tcp_send_rcvq allocates one skb for the chunk, which may be too
 *   big for the allocator): halve the chunk, as CRIU's __send_tcp_queue does.
 * A blocking send here would hang for ever in repair mode: nothing acknowledges a repair socket.
 */
static ssize_t write_all_nowait(int fd, const uint8_t *buf, size_t len) {
  size_t off = 0, chunk = len;
  int grown = 0;
  while (off < len) {
    size_t n = len - off < chunk ? len - off : chunk;
    ssize_t w = send(fd, buf + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) { off += (size_t)w; continue; }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == ENOMEM && chunk > 1024) { chunk /= 2; continue; }
    if ((w == 0 || errno == EAGAIN) && grown < GROW_ATTEMPTS) {
      if (grow_sndbuf(fd, len - off) < 0) return -1;
      grown++;
      continue;
    }
    if (w == 0 || errno == EAGAIN) break; /* short: the caller reports how much went in */
    return -1;
  }
  return (ssize_t)off;
}

/* Writes len bytes into a repair queue; a short write is EAGAIN (the queue must be whole). */
static int fill_queue(int fd, int queue, const uint8_t *buf, size_t len) {
  if (len == 0) return 0;
  if (set_int(fd, SOL_TCP, TCP_REPAIR_QUEUE, queue) < 0) return -1;
  ssize_t n = write_all_nowait(fd, buf, len);
  if (n < 0) return -1;
  if ((size_t)n != len) { errno = EAGAIN; return -1; }
  return 0;
}

static int get_buffer_prop(napi_env env, napi_value obj, const char *name, uint8_t **data, size_t *len) {
  napi_value v;
  bool is;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return -1;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) return -1;
  return napi_get_buffer_info(env, v, (void **)data, len) == napi_ok ? 0 : -1;
}

/*
 * restore(fd, state) on a fresh socket from tcpSocket(): repair on, queue sequence numbers, buffer
 * sizes, bind (forced reuse from repair mode + IP_FREEBIND, as CRIU does, so the address need not be up),
 * connect (no SYN in repair mode), TCP_REPAIR_OPTIONS and TCP_TIMESTAMP (allowed only while
 * ESTABLISHED with nothing sent yet), the receive queue, the sent-but-unacked part of the send
 * queue, then TCP_REPAIR_WINDOW. The socket stays in repair mode. The never-sent tail of the send
 * queue (state.unsentLength bytes) is NOT written here: bytes written in repair mode count as sent
 * and would leave only on the retransmit timer; sendUnsent() writes them after repairOff().
 */
static napi_value restore_js(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  napi_value s = argv[1];
  uint32_t family, send_seq, recv_seq, unsent, mss, options, snd_ws, rcv_ws, timestamp, has_window;
  uint32_t snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup, sndbuf, rcvbuf, freebind;
  if (get_u32_prop(env, s, "family", &family) || (family != 4 && family != 6) ||
      get_u32_prop(env, s, "sendSeq", &send_seq) || get_u32_prop(env, s, "recvSeq", &recv_seq) ||
      get_u32_prop(env, s, "unsentLength", &unsent) || get_u32_prop(env, s, "mss", &mss) ||
      get_u32_prop(env, s, "options", &options) || get_u32_prop(env, s, "sndWscale", &snd_ws) ||
      get_u32_prop(env, s, "rcvWscale", &rcv_ws) || get_u32_prop(env, s, "timestamp", &timestamp) ||
      get_u32_prop(env, s, "hasWindow", &has_window) || get_u32_prop(env, s, "sndWl1", &snd_wl1) ||
      get_u32_prop(env, s, "sndWnd", &snd_wnd) || get_u32_prop(env, s, "maxWindow", &max_window) ||
      get_u32_prop(env, s, "rcvWnd", &rcv_wnd) || get_u32_prop(env, s, "rcvWup", &rcv_wup) ||
      get_u32_prop(env, s, "sndbuf", &sndbuf) || get_u32_prop(env, s, "rcvbuf", &rcvbuf) ||
      get_u32_prop(env, s, "freebind", &freebind))
    return throw_type(env, "restore: state has a missing or mistyped field");
  uint8_t *sendq, *recvq;
  size_t sendq_len, recvq_len;
  if (get_buffer_prop(env, s, "sendQueue", &sendq, &sendq_len) || get_buffer_prop(env, s, "recvQueue", &recvq, &recvq_len))
    return throw_type(env, "restore: sendQueue and recvQueue must be Buffers");
  if (unsent > sendq_len) return throw_type(env, "restore: unsentLength exceeds the send queue");
  struct sockaddr_storage local, remote;
  socklen_t llen, rlen;
  if (get_addr(env, s, "localAddress", "localPort", (int)family, &local, &llen) ||
      get_addr(env, s, "remoteAddress", "remotePort", (int)family, &remote, &rlen))
    return throw_type(env, "restore: bad local or remote address");

  if (set_int(fd, SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON) < 0) return throw_errno(env, errno, "setsockopt(TCP_REPAIR, 1)");
  /* The queue sequence numbers name the first byte of each saved queue (soccr: seq - len). */
  if (set_int(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE) < 0 ||
      set_int(fd, SOL_TCP, TCP_QUEUE_SEQ, (int)(recv_seq - (uint32_t)recvq_len)) < 0)
    return throw_errno(env, errno, "setsockopt(TCP_QUEUE_SEQ, recv)");
  if (set_int(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE) < 0 ||
      set_int(fd, SOL_TCP, TCP_QUEUE_SEQ, (int)(send_seq - (uint32_t)sendq_len)) < 0)
    return throw_errno(env, errno, "setsockopt(TCP_QUEUE_SEQ, send)");
  /* Buffer limits as the kernel will hold them; the caller sized them so that both saved queues fit
     (src/tcp-repair/socket.ts restoreBuffers): the receive queue must fit under sk_rcvbuf or
     tcp_send_rcvq refuses it, the whole send queue under sk_sndbuf or the never-sent tail must
     wait for ACKs after repair off. */
  if (sndbuf && set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, sndbuf) < 0) return throw_errno(env, errno, "setsockopt(SO_SNDBUFFORCE)");
  if (rcvbuf && set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcvbuf) < 0) return throw_errno(env, errno, "setsockopt(SO_RCVBUFFORCE)");
  /* No SO_REUSEADDR here: TCP_REPAIR on already set sk_reuse = SK_FORCE_REUSE (net/ipv4/tcp.c),
     which lets the connection bind beside the service's listener on the same port; setting
     SO_REUSEADDR now would lower it back to SK_CAN_REUSE and bind would fail with EADDRINUSE. */
  if (freebind) {
    if (family == 4 ? set_int(fd, SOL_IP, IP_FREEBIND, 1) < 0 : set_int(fd, SOL_IPV6, IPV6_FREEBIND, 1) < 0)
      return throw_errno(env, errno, "setsockopt(IP_FREEBIND)");
  }
  if (bind(fd, (struct sockaddr *)&local, llen) < 0) return throw_errno(env, errno, "bind");
  if (connect(fd, (struct sockaddr *)&remote, rlen) < 0) return throw_errno(env, errno, "connect");

  struct tcp_repair_opt opts[4];
  int n = 0;
  if (options & TCPI_OPT_WSCALE) { opts[n].opt_code = COAT_TCPOPT_WINDOW; opts[n].opt_val = snd_ws + (rcv_ws << 16); n++; }
  if (options & TCPI_OPT_TIMESTAMPS) { opts[n].opt_code = COAT_TCPOPT_TIMESTAMP; opts[n].opt_val = 0; n++; }
  if (options & TCPI_OPT_SACK) { opts[n].opt_code = COAT_TCPOPT_SACK_PERM; opts[n].opt_val = 0; n++; }
  opts[n].opt_code = COAT_TCPOPT_MAXSEG;
  opts[n].opt_val = mss;
  n++;
  if (setsockopt(fd, SOL_TCP, TCP_REPAIR_OPTIONS, opts, (socklen_t)(n * sizeof opts[0])) < 0)
    return throw_errno(env, errno, "setsockopt(TCP_REPAIR_OPTIONS)");
  if ((options & TCPI_OPT_TIMESTAMPS) && set_int(fd, SOL_TCP, TCP_TIMESTAMP, (int)timestamp) < 0)
    return throw_errno(env, errno, "setsockopt(TCP_TIMESTAMP)");

  if (fill_queue(fd, TCP_RECV_QUEUE, recvq, recvq_len) < 0) return throw_errno(env, errno, "send(recv queue)");
  if (fill_queue(fd, TCP_SEND_QUEUE, sendq, sendq_len - unsent) < 0) return throw_errno(env, errno, "send(send queue)");
  set_int(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);

  if (has_window) {
    struct tcp_repair_window w = { .snd_wl1 = snd_wl1, .snd_wnd = snd_wnd, .max_window = max_window, .rcv_wnd = rcv_wnd, .rcv_wup = rcv_wup };
    if (setsockopt(fd, SOL_TCP, TCP_REPAIR_WINDOW, &w, sizeof w) < 0) return throw_errno(env, errno, "setsockopt(TCP_REPAIR_WINDOW)");
  }
  return undefined(env);
}

/*
 * sendUnsent(fd, bytes) -> bytes the kernel took. After repairOff(): the never-sent tail of the send
 * queue goes through the normal path so it leaves at once (CRIU's restore_tcp_queues writes it with
 * repair off). Never waits: the peer's ACKs may be held until after resume (the hold of a
 * migration), so waiting for the queue to drain could wait on the caller itself. The buffer was
 * sized at restore to hold the whole queue; if the kernel still refuses, it is grown and the write
 * tried again (write_all_nowait). A short count is the caller's typed error, never a silent loss.
 */
static napi_value send_unsent_js(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd;
  uint8_t *data;
  size_t len;
  bool is;
  if (get_i32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  if (napi_is_buffer(env, argv[1], &is) != napi_ok || !is || napi_get_buffer_info(env, argv[1], (void **)&data, &len) != napi_ok)
    return throw_type(env, "bytes must be a Buffer");
  ssize_t off = write_all_nowait(fd, data, len);
  if (off < 0) return throw_errno(env, errno, "send(unsent)");
  napi_value r;
  napi_create_double(env, (double)off, &r);
  return r;
}

/* counters(fd) -> { bytesAcked, bytesReceived, inq, outq }: the kernel's stream counters (TCP_INFO,
 * RFC 4898) and queue lengths, from which the stream offsets the application has reached follow. */
static napi_value counters_js(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  memset(&ti, 0, sizeof ti);
  if (getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len) < 0) return throw_errno(env, errno, "getsockopt(TCP_INFO)");
  int inq, outq;
  if (ioctl(fd, SIOCINQ, &inq) < 0) return throw_errno(env, errno, "ioctl(SIOCINQ)");
  if (ioctl(fd, SIOCOUTQ, &outq) < 0) return throw_errno(env, errno, "ioctl(SIOCOUTQ)");
  napi_value r;
  napi_create_object(env, &r);
  set_u64(env, r, "bytesAcked", ti.tcpi_bytes_acked);
  set_u64(env, r, "bytesReceived", ti.tcpi_bytes_received);
  set_u32(env, r, "inq", (uint32_t)inq);
  set_u32(env, r, "outq", (uint32_t)outq);
  set_u32(env, r, "state", ti.tcpi_state);
  return r;
}

/* listenSocket(fd, {family, address, port, freebind}): SO_REUSEADDR (+ IP_FREEBIND), bind, listen. */
static napi_value listen_js(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd;
  uint32_t family, freebind, backlog;
  if (get_i32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  if (get_u32_prop(env, argv[1], "family", &family) || (family != 4 && family != 6) ||
      get_u32_prop(env, argv[1], "freebind", &freebind) || get_u32_prop(env, argv[1], "backlog", &backlog))
    return throw_type(env, "listen: bad options");
  struct sockaddr_storage a;
  socklen_t alen;
  if (get_addr(env, argv[1], "address", "port", (int)family, &a, &alen)) return throw_type(env, "listen: bad address");
  if (set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0) return throw_errno(env, errno, "setsockopt(SO_REUSEADDR)");
  if (freebind && (family == 4 ? set_int(fd, SOL_IP, IP_FREEBIND, 1) : set_int(fd, SOL_IPV6, IPV6_FREEBIND, 1)) < 0)
    return throw_errno(env, errno, "setsockopt(IP_FREEBIND)");
  if (bind(fd, (struct sockaddr *)&a, alen) < 0) return throw_errno(env, errno, "bind");
  if (listen(fd, (int)backlog) < 0) return throw_errno(env, errno, "listen");
  return undefined(env);
}

/* clearCloexec(fd): lets a spawned service inherit the fd (Node maps it to the child's index). */
static napi_value clear_cloexec_js(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0) return throw_errno(env, errno, "fcntl(F_SETFD)");
  return undefined(env);
}

/* ---- shared mapping of a state file (the service SDK's StateFile) -------------------------- */

struct mapping { void *addr; size_t len; };

static void unmap_finalize(napi_env env, void *data, void *hint) {
  (void)env; (void)data;
  struct mapping *m = hint;
  munmap(m->addr, m->len);
  free(m);
}

/*
 * mmapShared(fd, length) -> ArrayBuffer over MAP_SHARED pages of the file: the service's state
 * lives in the page cache, so an external process (the executor) can copy it by reading the file,
 * and soft-dirty tracking sees the writes where the kernel has CONFIG_MEM_SOFT_DIRTY.
 */
static napi_value mmap_shared_js(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd;
  double length;
  if (get_i32(env, argv[0], &fd) || napi_get_value_double(env, argv[1], &length) != napi_ok || length <= 0)
    return throw_type(env, "fd must be an integer and length positive");
  struct mapping *m = malloc(sizeof *m);
  if (!m) return throw_errno(env, ENOMEM, "malloc");
  m->len = (size_t)length;
  m->addr = mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m->addr == MAP_FAILED) { int e = errno; free(m); return throw_errno(env, e, "mmap"); }
  napi_value ab;
  if (napi_create_external_arraybuffer(env, m->addr, m->len, unmap_finalize, m, &ab) != napi_ok) {
    munmap(m->addr, m->len);
    free(m);
    return NULL;
  }
  return ab;
}

/*
 * comparePages(fd, previous, pageSize) -> Uint32Array | null. The compare tracker's round over a
 * state file whose writer is frozen (the dump: src/executors/tcp-repair/dirty-pages.ts): maps the
 * file read-only (MAP_POPULATE: its pages are in the page cache, no fault per page), compares it
 * page by page with `previous` (the last round's copy, same length), copies each page that differs
 * into `previous` and returns their indexes. No read(2) copy of the whole file and no JS loop over
 * pages. null when the file's size is not previous.length (the caller reads the file instead).
 * Mapping a file another process may truncate risks SIGBUS; the caller guarantees that process is
 * frozen for the length of this call.
 */
static napi_value compare_pages_js(napi_env env, napi_callback_info info) {
  ARGS(3);
  int32_t fd, page_size;
  uint8_t *prev;
  size_t prev_len;
  bool is;
  if (get_i32(env, argv[0], &fd) || get_i32(env, argv[2], &page_size) || page_size <= 0) return throw_type(env, "fd and pageSize must be integers");
  if (napi_is_buffer(env, argv[1], &is) != napi_ok || !is || napi_get_buffer_info(env, argv[1], (void **)&prev, &prev_len) != napi_ok)
    return throw_type(env, "previous must be a Buffer");
  struct stat st;
  if (fstat(fd, &st) < 0) return throw_errno(env, errno, "fstat");
  napi_value result;
  if ((size_t)st.st_size != prev_len) {
    napi_get_null(env, &result);
    return result;
  }
  size_t pages = (prev_len + (size_t)page_size - 1) / (size_t)page_size;
  uint32_t *idx = malloc((pages > 0 ? pages : 1) * sizeof *idx);
  if (!idx) return throw_errno(env, ENOMEM, "malloc");
  size_t n = 0;
  if (prev_len > 0) {
    uint8_t *map = mmap(NULL, prev_len, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED) { int e = errno; free(idx); return throw_errno(env, e, "mmap"); }
    for (size_t i = 0; i < pages; i++) {
      size_t off = i * (size_t)page_size;
      size_t len = prev_len - off < (size_t)page_size ? prev_len - off : (size_t)page_size;
      if (memcmp(map + off, prev + off, len) != 0) {
        memcpy(prev + off, map + off, len);
        idx[n++] = (uint32_t)i;
      }
    }
    munmap(map, prev_len);
  }
  napi_value ab;
  void *data;
  if (napi_create_arraybuffer(env, n * sizeof *idx, &data, &ab) != napi_ok) { free(idx); return NULL; }
  if (n) memcpy(data, idx, n * sizeof *idx);
  free(idx);
  napi_create_typedarray(env, napi_uint32_array, n, ab, 0, &result);
  return result;
}

/* ---- module ------------------------------------------------------------------------------- */

#define EXPORT(name, fn)                                                         \
  do {                                                                           \
    napi_value f;                                                                \
    napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f);             \
    napi_set_named_property(env, exports, name, f);                              \
  } while (0)

static napi_value init(napi_env env, napi_value exports) {
  EXPORT("pidfdOpen", pidfd_open_js);
  EXPORT("pidfdGetfd", pidfd_getfd_js);
  EXPORT("close", close_js);
  EXPORT("socketKind", socket_kind_js);
  EXPORT("describeSocket", describe_socket_js);
  EXPORT("tcpSocket", tcp_socket_js);
  EXPORT("repairOn", repair_on_js);
  EXPORT("repairOff", repair_off_js);
  EXPORT("setWindow", set_window_js);
  EXPORT("save", save_js);
  EXPORT("restore", restore_js);
  EXPORT("sendUnsent", send_unsent_js);
  EXPORT("counters", counters_js);
  EXPORT("listen", listen_js);
  EXPORT("clearCloexec", clear_cloexec_js);
  EXPORT("mmapShared", mmap_shared_js);
  EXPORT("comparePages", compare_pages_js);
  napi_value abi;
  napi_create_uint32(env, 1, &abi);
  napi_set_named_property(env, exports, "abiVersion", abi);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
