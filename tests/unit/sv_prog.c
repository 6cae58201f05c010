/* SPDX-License-Identifier: MIT */
/*
 * The program test_supervise.c runs under `socksify --supervise`. Its network
 * calls are raw system calls made through libc's own syscall(), found with
 * dlsym in libc itself: the launcher preloads the shim, which interposes
 * syscall() for the socket numbers, and these calls must reach the
 * supervisor's filter as a static or Go program's would, never the shim.
 *
 * One subcommand per run; each prints "ok ..." or "FAIL ..." lines and exits
 * 0 when every check passed, 1 otherwise (77 for a check that cannot run
 * here, with a reason), except those whose exit is what is checked:
 *   uring          io_uring_setup fails with ENOSYS
 *   unix           connect() to an AF_UNIX listener works
 *   loopback       connect() to a TCP listener on 127.0.0.1 works (direct)
 *   efault         connect() with unreadable addresses fails EFAULT
 *   udp            sendto() 192.0.2.1:9 fails EPERM, the socket still unbound
 *   iovecs         sendmsg() of 65 and 1024 iovecs to 127.0.0.1:9 works
 *   int80          i386 socketcall/connect/sendto fail EPERM (x86-64 only)
 *   exit N         exits with N
 *   raise SIG      dies by the signal SIG (a number)
 *   catch          prints "ready", exits 3 on SIGTERM
 *   orphan PORT    prints "ready", waits for its parent (the launcher) to
 *                  change, then connect() to 127.0.0.1:PORT must fail ENOSYS
 *   bg             a child outlives it: 300 ms later it connects to a
 *                  listener of 127.0.0.1 and prints "ok child connect"
 *   proxy PORT     connect() to 127.0.0.1:PORT, "ping" echoed back
 *   tfo-mmsg PORT  sendmmsg(MSG_FASTOPEN) of a TCP socket to 127.0.0.1:PORT
 *                  must not connect (it would go around the proxy)
 *   unspec         (proxy_loopback) sendto/sendmsg/sendmmsg naming an
 *                  AF_UNSPEC address of 127.0.0.1 (IPv4 UDP sends there) fail
 *                  EPERM, nothing arrives; connect(AF_UNSPEC) still works
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif

static long (*sys)(long, ...);
static int failures;

static void check(int cond, const char *what)
{
	printf("%s %s\n", cond ? "ok" : "FAIL", what);
	if (!cond)
		failures++;
}

/* The call's result: -errno on failure, as the kernel gives it. */
static long call(long nr, long a, long b, long c)
{
	long r = sys(nr, a, b, c);
	return r < 0 ? -errno : r;
}

static long call6(long nr, long a, long b, long c, long d, long e, long f)
{
	long r = sys(nr, a, b, c, d, e, f);
	return r < 0 ? -errno : r;
}

static struct sockaddr_in loop4(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

/* A TCP listener on 127.0.0.1 (made with libc: the filter does not stop
 * bind or listen); its port in *port. */
static int listener(int *port)
{
	struct sockaddr_in a = loop4(0);
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, l) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &l) < 0) {
		perror("listener");
		exit(2);
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static long connect4(int fd, int port)
{
	struct sockaddr_in a = loop4(port);
	return call(SYS_connect, fd, (long)&a, sizeof(a));
}

static int cmd_uring(void)
{
	char params[120] = {0};
	check(call(SYS_io_uring_setup, 4, (long)params, 0) == -ENOSYS,
	      "io_uring_setup fails with ENOSYS");
	return failures;
}

static int cmd_unix(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "sv_prog.%d", (int)getpid());
	socklen_t l = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	                          strlen(a.sun_path + 1));
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0), fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(lfd, (struct sockaddr *)&a, l) < 0 || listen(lfd, 1) < 0)
		return perror("unix listener"), 2;
	check(call(SYS_connect, fd, (long)&a, l) == 0, "connect to an AF_UNIX socket");
	int c = accept(lfd, NULL, NULL);
	check(c >= 0, "the AF_UNIX listener accepts it");
	return failures;
}

static int cmd_loopback(void)
{
	int port, lfd = listener(&port), fd = socket(AF_INET, SOCK_STREAM, 0);
	long r = connect4(fd, port);
	check(r == 0, "connect to 127.0.0.1 (direct)");
	if (r)
		printf("# connect: %s\n", strerror((int)-r));
	struct sockaddr_in peer;
	socklen_t l = sizeof(peer);
	int c = accept(lfd, (struct sockaddr *)&peer, &l);
	struct sockaddr_in mine;
	socklen_t ml = sizeof(mine);
	getsockname(fd, (struct sockaddr *)&mine, &ml);
	check(c >= 0 && peer.sin_port == mine.sin_port,
	      "the listener accepts it from the program's own socket");
	return failures;
}

static int cmd_efault(void)
{
	long page = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, (size_t)page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	check(call(SYS_connect, fd, 1, sizeof(struct sockaddr_in)) == -EFAULT,
	      "connect with address 1 fails EFAULT");
	check(call(SYS_connect, fd, (long)p, sizeof(struct sockaddr_in)) == -EFAULT,
	      "connect with a PROT_NONE address fails EFAULT");
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	check(call6(SYS_sendto, u, (long)"x", 1, 0, (long)p, 16) == -EFAULT,
	      "sendto with a PROT_NONE address fails EFAULT");
	struct sockaddr_in a = loop4(9);
	check(call(SYS_connect, fd, (long)&a, sizeof(a)) == -ECONNREFUSED,
	      "the socket is still usable: connect to 127.0.0.1:9 is refused");
	return failures;
}

/* sendmsg to 127.0.0.1:9 (direct) with n iovecs of one byte */
static long sendmsg_iovecs(int u, size_t n)
{
	static struct iovec iov[1025];
	struct sockaddr_in a = loop4(9);
	for (size_t i = 0; i < n; i++)
		iov[i] = (struct iovec){.iov_base = "x", .iov_len = 1};
	struct msghdr m = {.msg_name = &a,
	                   .msg_namelen = sizeof(a),
	                   .msg_iov = iov,
	                   .msg_iovlen = n};
	return call(SYS_sendmsg, u, (long)&m, 0);
}

static int cmd_iovecs(void)
{
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	check(sendmsg_iovecs(u, 65) == 65,
	      "sendmsg of 65 iovecs to 127.0.0.1:9 sends 65 bytes");
	check(sendmsg_iovecs(u, 1024) == 1024, "and of 1024 iovecs 1024 bytes");
	check(sendmsg_iovecs(u, 1025) == -EMSGSIZE,
	      "1025 iovecs fail EMSGSIZE, as the kernel says");
	return failures;
}

static int cmd_udp(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9)};
	inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	check(call6(SYS_sendto, u, (long)"x", 1, 0, (long)&a, sizeof(a)) == -EPERM,
	      "sendto 192.0.2.1:9 fails EPERM");
	struct sockaddr_in mine;
	socklen_t l = sizeof(mine);
	getsockname(u, (struct sockaddr *)&mine, &l);
	check(mine.sin_port == 0, "the socket is still unbound: nothing was sent");
	return failures;
}

#if defined(__x86_64__)
static long int80(long nr, long a, long b, long c)
{
	long r;
	__asm__ volatile("int $0x80"
	                 : "=a"(r)
	                 : "a"(nr), "b"(a), "c"(b), "d"(c)
	                 : "memory");
	return r;
}

/* i386 getpid (20) through int $0x80, in a child (no IA32 emulation: a
 * fault): 1 when it works, 0 when not. */
static int have_int80(void)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(int80(20, 0, 0, 0) == getpid() ? 0 : 1);
	int st;
	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int cmd_int80(void)
{
	if (!have_int80()) {
		puts("skip the i386 ABI does not run here (no IA32 emulation)");
		return 77;
	}
	struct sockaddr_in a = loop4(9);
	unsigned args[3] = {(unsigned)socket(AF_INET, SOCK_STREAM, 0), 0, sizeof(a)};
	check(int80(102, 3, (long)(unsigned long)args, 0) == -EPERM,
	      "i386 socketcall(SYS_CONNECT) fails EPERM");
	check(int80(362, args[0], 0, sizeof(a)) == -EPERM, "i386 connect fails EPERM");
	check(int80(369, args[0], 0, 0) == -EPERM, "i386 sendto fails EPERM");
	check(int80(20, 0, 0, 0) == getpid(), "i386 getpid still works");
	return failures;
}
#else
static int cmd_int80(void)
{
	puts("skip the i386 ABI exists on x86-64 only");
	return 77;
}
#endif

static void on_term(int sig)
{
	(void)sig;
	_exit(3);
}

__attribute__((noreturn)) static void cmd_catch(void)
{
	signal(SIGTERM, on_term);
	puts("ready");
	fflush(stdout);
	for (;;)
		pause();
}

static int cmd_orphan(int port)
{
	pid_t parent = getppid();
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	puts("ready");
	fflush(stdout);
	for (int i = 0; i < 1000 && getppid() == parent; i++)
		usleep(10000);
	check(getppid() != parent, "the launcher is gone");
	long r = connect4(fd, port);
	check(r == -ENOSYS, "connect without a supervisor fails ENOSYS");
	if (r != -ENOSYS)
		printf("# connect gave %ld\n", r);
	return failures;
}

static int cmd_bg(void)
{
	int port, lfd = listener(&port);
	fflush(stdout);
	if (fork() == 0) {
		usleep(300000);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		check(connect4(fd, port) == 0 && accept(lfd, NULL, NULL) >= 0,
		      "child connect");
		_exit(failures);
	}
	puts("ok parent exits");
	return 0;
}

static int cmd_proxy(int port)
{
	char buf[8] = {0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	long r = connect4(fd, port);
	check(r == 0, "connect to the echo listener");
	if (r)
		printf("# connect: %s\n", strerror((int)-r));
	check(write(fd, "ping", 4) == 4 && read(fd, buf, 4) == 4 && !strcmp(buf, "ping"),
	      "ping echoed back");
	return failures;
}

static int cmd_tfo_mmsg(int port)
{
	struct sockaddr_in a = loop4(port);
	struct iovec iov = {.iov_base = "ping", .iov_len = 4};
	struct mmsghdr m = {.msg_hdr = {.msg_name = &a,
	                                .msg_namelen = sizeof(a),
	                                .msg_iov = &iov,
	                                .msg_iovlen = 1}};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	long r = call6(SYS_sendmmsg, fd, (long)&m, 1, MSG_FASTOPEN, 0, 0);
	struct sockaddr_in peer;
	socklen_t l = sizeof(peer);
	int connected = getpeername(fd, (struct sockaddr *)&peer, &l) == 0;
	printf("# sendmmsg gave %ld, connected %d\n", r, connected);
	check(r < 0 && !connected, "sendmmsg(MSG_FASTOPEN) does not connect");
	return failures;
}

/* An AF_UNSPEC address is an IPv4 one to udp_sendmsg: never sent direct. */
static int cmd_unspec(void)
{
	struct sockaddr_in a = loop4(0);
	socklen_t l = sizeof(a);
	char c;
	int trap = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (trap < 0 || bind(trap, (struct sockaddr *)&a, l) < 0 ||
	    getsockname(trap, (struct sockaddr *)&a, &l) < 0)
		return 2;
	a.sin_family = AF_UNSPEC;
	struct iovec iov = {.iov_base = "x", .iov_len = 1};
	struct mmsghdr m = {.msg_hdr = {.msg_name = &a,
	                                .msg_namelen = sizeof(a),
	                                .msg_iov = &iov,
	                                .msg_iovlen = 1}};
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	check(call6(SYS_sendto, u, (long)"x", 1, 0, (long)&a, sizeof(a)) == -EPERM,
	      "sendto AF_UNSPEC 127.0.0.1 fails EPERM");
	check(call(SYS_sendmsg, u, (long)&m.msg_hdr, 0) == -EPERM,
	      "sendmsg AF_UNSPEC 127.0.0.1 fails EPERM");
	check(call(SYS_sendmmsg, u, (long)&m, 1) == -EPERM,
	      "sendmmsg AF_UNSPEC 127.0.0.1 fails EPERM");
	usleep(100000);
	check(recv(trap, &c, 1, 0) < 0 && errno == EAGAIN, "nothing arrived");
	int t = socket(AF_INET, SOCK_STREAM, 0);
	check(call(SYS_connect, t, (long)&a, sizeof(a)) == 0,
	      "connect AF_UNSPEC of a TCP socket (a disconnect) answers 0");
	return failures;
}

int main(int argc, char **argv)
{
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	sys = (long (*)(long, ...))dlsym(libc ? libc : RTLD_DEFAULT, "syscall");
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *c = argc > 1 ? argv[1] : "";
	int n = argc > 2 ? atoi(argv[2]) : 0;

	if (!strcmp(c, "uring"))
		return cmd_uring();
	if (!strcmp(c, "unix"))
		return cmd_unix();
	if (!strcmp(c, "loopback"))
		return cmd_loopback();
	if (!strcmp(c, "efault"))
		return cmd_efault();
	if (!strcmp(c, "udp"))
		return cmd_udp();
	if (!strcmp(c, "iovecs"))
		return cmd_iovecs();
	if (!strcmp(c, "int80"))
		return cmd_int80();
	if (!strcmp(c, "exit"))
		return n;
	if (!strcmp(c, "raise")) {
		signal(n, SIG_DFL);
		raise(n);
		return 1;
	}
	if (!strcmp(c, "catch"))
		cmd_catch();
	if (!strcmp(c, "orphan"))
		return cmd_orphan(n);
	if (!strcmp(c, "bg"))
		return cmd_bg();
	if (!strcmp(c, "proxy"))
		return cmd_proxy(n);
	if (!strcmp(c, "tfo-mmsg"))
		return cmd_tfo_mmsg(n);
	if (!strcmp(c, "unspec"))
		return cmd_unspec();
	fprintf(stderr, "sv_prog: unknown subcommand %s\n", c);
	return 2;
}
