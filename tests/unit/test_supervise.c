/* SPDX-License-Identifier: MIT */
/*
 * The supervisor end to end (cli/supervise/), printed as TAP: the real
 * launcher (SV_LAUNCHER) runs `--supervise` the test program sv_prog.c
 * (SV_PROG), whose raw system calls reach the real seccomp filter, on
 * loopback: io_uring, AF_UNIX and loopback connects, unreadable addresses,
 * a UDP datagram refused before it is sent, the i386 ABI, exit statuses and
 * signals both ways, the supervisor killed, a background child that
 * outlives the program, a setuid program refused; then through the real
 * socksify-server (SV_SERVER) with SOCKSIFY_PROXY_LOOPBACK=1: a connect to
 * an echo listener must show at the server as a CONNECT.
 *
 * The launcher is this build's (the sanitizer builds run theirs: the DNS
 * stub's thread and the proxied connects' workers under ThreadSanitizer).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

enum { OUT_MAX = 8192, WAIT_MS = 20000 };

static const char *launcher, *prog, *server;
static char proxy_url[64] = "socks5h://127.0.0.1:1"; /* nothing listens there */

struct run {
	pid_t pid;
	int out, err; /* the read ends of its stdout and stderr */
	char obuf[OUT_MAX], ebuf[OUT_MAX];
	size_t olen, elen;
	int status;
};

/* Starts `launcher [-v] --supervise -p URL -- argv...` with env (NAME=VALUE
 * strings, NULL-terminated) added. */
static void start(struct run *r, const char *const *argv, const char *const *env,
                  const char *path)
{
	int o[2], e[2];
	const char *args[16] = {launcher,  "-v", "--supervise",     "-p",
	                        proxy_url, "--", path ? path : prog};
	size_t n = 7;
	for (size_t i = 0; argv[i] && n < 15; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	memset(r, 0, sizeof(*r));
	if (pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0)
		abort();
	r->pid = fork();
	if (r->pid == 0) {
		dup2(o[1], 1);
		dup2(e[1], 2);
		for (size_t i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execv(launcher, (char *const *)args);
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	r->out = o[0];
	r->err = e[0];
}

/* Reads what fd has into buf (at most OUT_MAX - 1 in all); waits up to ms
 * for it to say something when block; returns false at EOF. */
static bool drain(int fd, char *buf, size_t *len, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (fd < 0 || poll(&p, 1, ms) <= 0)
		return fd >= 0;
	ssize_t n = read(fd, buf + *len, OUT_MAX - 1 - *len);
	if (n > 0)
		*len += (size_t)n;
	buf[*len] = '\0';
	return n > 0;
}

/* Waits until stdout has a line containing what (or EOF, or a timeout). */
static bool wait_output(struct run *r, const char *what)
{
	for (int i = 0; i < WAIT_MS / 100 && !strstr(r->obuf, what); i++)
		if (!drain(r->out, r->obuf, &r->olen, 100) && !strstr(r->obuf, what))
			return false;
	return strstr(r->obuf, what) != NULL;
}

/* Each line of text as a TAP diagnostic. */
static void diag_lines(const char *what, const char *text)
{
	while (*text) {
		int len = (int)strcspn(text, "\n");
		tap_diag("%s: %.*s", what, len, text);
		text += len + (text[len] == '\n');
	}
}

/* Waits for the launcher (killed after WAIT_MS) and reads all its output. */
static int finish(struct run *r)
{
	int st = 0;
	for (int i = 0; waitpid(r->pid, &st, WNOHANG) == 0; i++) {
		if (i == WAIT_MS / 10) {
			tap_diag("the launcher did not end: killed");
			kill(r->pid, SIGKILL);
		}
		drain(r->out, r->obuf, &r->olen, 0);
		drain(r->err, r->ebuf, &r->elen, 0);
		usleep(10000);
	}
	while (drain(r->out, r->obuf, &r->olen, WAIT_MS))
		;
	while (drain(r->err, r->ebuf, &r->elen, WAIT_MS))
		;
	close(r->out);
	close(r->err);
	r->status = st;
	if (strstr(r->obuf, "FAIL") || r->elen) {
		diag_lines("stdout", r->obuf);
		diag_lines("stderr", r->ebuf);
	}
	return st;
}

static size_t lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Runs sv_prog with args; its checks passed and it exited 0 (77: skipped). */
static void check_prog(const char *what, const char *const *argv)
{
	struct run r;
	start(&r, argv, NULL, NULL);
	int st = finish(&r);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
		char *nl = strchr(r.obuf, '\n');
		if (nl)
			*nl = '\0';
		tap_ok(1, "%s # skip %s", what, r.obuf + (r.olen > 5 ? 5 : 0));
		return;
	}
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(r.obuf, "ok ") &&
	               !strstr(r.obuf, "FAIL"),
	       "%s", what);
}

static void test_calls(void)
{
	check_prog("io_uring_setup fails ENOSYS", (const char *const[]){"uring", NULL});
	check_prog("connect to AF_UNIX works", (const char *const[]){"unix", NULL});
	check_prog("connect to 127.0.0.1 goes direct",
	           (const char *const[]){"loopback", NULL});
	check_prog("unreadable addresses fail EFAULT",
	           (const char *const[]){"efault", NULL});
	check_prog("sendmsg of up to 1024 iovecs to 127.0.0.1 works",
	           (const char *const[]){"iovecs", NULL});
	check_prog("the i386 ABI's socketcall/connect/sendto fail EPERM",
	           (const char *const[]){"int80", NULL});
}

static void test_udp(void)
{
	struct run r;
	start(&r, (const char *const[]){"udp", NULL}, NULL, NULL);
	int st = finish(&r);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 && !strstr(r.obuf, "FAIL"),
	       "UDP sendto 192.0.2.1:9 fails EPERM before anything is sent");
	tap_ok(lines(r.ebuf) == 1 &&
	               strstr(r.ebuf, "supervisor: UDP datagram to 192.0.2.1:9 by pid"),
	       "the supervisor logs one line for it");
}

/* udp_sendmsg takes an AF_UNSPEC address as an IPv4 one: it was continued,
 * and the datagram went direct (proxy_loopback: 127.0.0.1 is proxied) */
static void test_unspec(void)
{
	static const char *const env[] = {"SOCKSIFY_PROXY_LOOPBACK=1", NULL};
	struct run r;
	start(&r, (const char *const[]){"unspec", NULL}, env, NULL);
	int st = finish(&r);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 && !strstr(r.obuf, "FAIL"),
	       "UDP sends naming AF_UNSPEC 127.0.0.1 are refused, nothing sent");
	tap_ok(lines(r.ebuf) == 3 && strstr(r.ebuf, "UDP datagram to 127.0.0.1:") &&
	               strstr(r.ebuf, "batch of datagrams to 127.0.0.1:"),
	       "the supervisor logs one line for each");
	if (lines(r.ebuf) != 3)
		diag_lines("stderr", r.ebuf);
}

static void test_exit(void)
{
	struct run r;
	start(&r, (const char *const[]){"exit", "7", NULL}, NULL, NULL);
	int st = finish(&r);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 7, "exit 7: the launcher exits 7");
	start(&r, (const char *const[]){"raise", "15", NULL}, NULL, NULL);
	st = finish(&r);
	tap_ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM,
	       "killed by SIGTERM: the launcher dies by SIGTERM");

	/* as a shell sees it */
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "'%s' --supervise -p '%s' -- '%s' raise 15; echo $?",
	         launcher, proxy_url, prog);
	FILE *f = popen(cmd, "r");
	char line[64] = "";
	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = '\0';
		pclose(f);
	}
	line[strcspn(line, "\n")] = '\0';
	tap_ok(strcmp(line, "143") == 0, "a shell sees 143 (got %s)", line);
}

static void test_sigterm_forwarded(void)
{
	struct run r;
	start(&r, (const char *const[]){"catch", NULL}, NULL, NULL);
	bool ready = wait_output(&r, "ready");
	tap_ok(ready, "the program is ready for SIGTERM");
	if (ready)
		kill(r.pid, SIGTERM);
	int st = finish(&r);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 3,
	       "SIGTERM to the launcher reaches the program: it exits 3, so does the "
	       "launcher");
}

/* A TCP listener on 127.0.0.1, non-blocking: its port in *port. */
static int listener(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t l = sizeof(a);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, l) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &l) < 0)
		abort();
	*port = ntohs(a.sin_port);
	return fd;
}

static void test_supervisor_killed(void)
{
	struct run r;
	char port_text[16];
	int port, lfd = listener(&port);

	snprintf(port_text, sizeof(port_text), "%d", port);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); /* the orphan comes back here */
	start(&r, (const char *const[]){"orphan", port_text, NULL}, NULL, NULL);
	bool ready = wait_output(&r, "ready");
	tap_ok(ready, "the program is ready");
	kill(r.pid, SIGKILL);
	int st = finish(&r); /* reads until the program closes its stdout too */
	tap_ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the launcher is killed");
	tap_ok(strstr(r.obuf, "ok connect without a supervisor fails ENOSYS") != NULL,
	       "the program's next connect fails ENOSYS");
	tap_ok(accept(lfd, NULL, NULL) < 0 && errno == EAGAIN,
	       "and nothing reached the listener (not direct)");
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
	close(lfd);
}

static void test_background_child(void)
{
	struct run r;
	start(&r, (const char *const[]){"bg", NULL}, NULL, NULL);
	int st = 0;
	waitpid(r.pid, &st, 0);
	drain(r.out, r.obuf, &r.olen, 0); /* what is there when the launcher ends */
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	       "background child: the launcher exits 0");
	tap_ok(strstr(r.obuf, "ok child connect") != NULL,
	       "it waited for the child, whose connect 300 ms later was served");
	close(r.out);
	close(r.err);
}

static void test_setuid(void)
{
	char dir[] = "/tmp/test_supervise.XXXXXX", copy[64], cmd[256];
	if (!mkdtemp(dir)) {
		tap_ok(1, "setuid program refused # skip no temporary directory");
		return;
	}
	snprintf(copy, sizeof(copy), "%s/sv_prog", dir);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 4755 '%s'", prog, copy, copy);
	if (system(cmd) != 0) {
		tap_ok(1, "setuid program refused # skip cannot make a setuid copy");
		rmdir(dir);
		return;
	}
	struct run r;
	start(&r, (const char *const[]){"exit", "0", NULL}, NULL, copy);
	int st = finish(&r);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 126, "a setuid program: 126");
	tap_ok(lines(r.ebuf) == 1 && strstr(r.ebuf, "setuid") && r.olen == 0,
	       "one line says why, the program did not run");
	unlink(copy);
	rmdir(dir);
}

/* --- through socksify-server ------------------------------------------------------ */

struct proxy {
	pid_t server, echo;
	int log; /* the server's stderr */
	char logbuf[OUT_MAX];
	size_t loglen;
	int echo_port;
};

/* An echo server in a child of ours: each connection echoed until EOF. */
static pid_t echo_server(int *port)
{
	int lfd = listener(port);
	pid_t pid = fork();
	if (pid == 0) {
		fcntl(lfd, F_SETFL, 0);
		for (;;) {
			int c = accept(lfd, NULL, NULL);
			char buf[256];
			ssize_t n;
			while (c >= 0 && (n = read(c, buf, sizeof(buf))) > 0)
				if (write(c, buf, (size_t)n) != n)
					break;
			if (c >= 0)
				close(c);
		}
	}
	close(lfd);
	return pid;
}

/* socksify-server -v on 127.0.0.1, a port of its choice; proxy_url set. */
static bool proxy_start(struct proxy *p)
{
	int e[2];
	memset(p, 0, sizeof(*p));
	if (pipe2(e, O_CLOEXEC) < 0)
		return false;
	p->server = fork();
	if (p->server == 0) {
		dup2(e[1], 2);
		execl(server, server, "-l", "127.0.0.1:0", "-v", "--allow-open",
		      (char *)NULL);
		_exit(127);
	}
	close(e[1]);
	p->log = e[0];
	for (int i = 0; i < WAIT_MS / 100 && !strstr(p->logbuf, "\n"); i++)
		if (!drain(p->log, p->logbuf, &p->loglen, 100))
			break;
	const char *at = strstr(p->logbuf, "listening on 127.0.0.1:");
	if (!at)
		return false;
	snprintf(proxy_url, sizeof(proxy_url), "socks5h://127.0.0.1:%d",
	         atoi(at + strlen("listening on 127.0.0.1:")));
	p->echo = echo_server(&p->echo_port);
	return true;
}

/* The server's log so far contains what (waits a little for it). */
static bool proxy_logged(struct proxy *p, const char *what)
{
	for (int i = 0; i < 50 && !strstr(p->logbuf, what); i++)
		drain(p->log, p->logbuf, &p->loglen, 100);
	return strstr(p->logbuf, what) != NULL;
}

static void proxy_stop(struct proxy *p)
{
	kill(p->server, SIGTERM);
	kill(p->echo, SIGKILL);
	waitpid(p->server, NULL, 0);
	waitpid(p->echo, NULL, 0);
	close(p->log);
	snprintf(proxy_url, sizeof(proxy_url), "socks5h://127.0.0.1:1");
}

static void test_proxied(struct proxy *p)
{
	static const char *const env[] = {"SOCKSIFY_PROXY_LOOPBACK=1", NULL};
	char port[16], want[64];
	struct run r;

	snprintf(port, sizeof(port), "%d", p->echo_port);
	start(&r, (const char *const[]){"proxy", port, NULL}, env, NULL);
	int st = finish(&r);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 && !strstr(r.obuf, "FAIL"),
	       "proxy_loopback: a connect to the echo listener works, ping echoed");
	snprintf(want, sizeof(want), "CONNECT 127.0.0.1:%s: succeeded", port);
	tap_ok(proxy_logged(p, want), "the server logs the CONNECT");
	snprintf(want, sizeof(want), "supervisor: connect 127.0.0.1:%s via", port);
	tap_ok(strstr(r.ebuf, want) != NULL, "the supervisor logs the proxied connect");

	/* with MSG_FASTOPEN the kernel connects a TCP socket to the address of
	 * sendmmsg's first message: refused, never direct */
	start(&r, (const char *const[]){"tfo-mmsg", port, NULL}, env, NULL);
	st = finish(&r);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 && !strstr(r.obuf, "FAIL"),
	       "sendmmsg(MSG_FASTOPEN) of a TCP socket to a proxied destination fails");
	tap_ok(lines(r.ebuf) == 1 && strstr(r.ebuf, "TCP Fast Open batch to 127.0.0.1:"),
	       "the supervisor logs one line for it");
}

int main(void)
{
	tap_init();
	launcher = getenv("SV_LAUNCHER");
	prog = getenv("SV_PROG");
	server = getenv("SV_SERVER");
	if (!launcher || !prog || !server) {
		printf("1..0 # skip SV_LAUNCHER, SV_PROG and SV_SERVER are not set\n");
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	/* for the programs run: the launcher preloads the shim before the
	 * sanitizer's runtime (read at start-up: this process is not affected) */
	const char *asan = getenv("ASAN_OPTIONS");
	char opts[512];
	snprintf(opts, sizeof(opts), "%s%sverify_asan_link_order=0", asan ? asan : "",
	         asan && *asan ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
	test_calls();
	test_udp();
	test_unspec();
	test_exit();
	test_sigterm_forwarded();
	test_supervisor_killed();
	test_background_child();
	test_setuid();
	struct proxy p;
	if (proxy_start(&p)) {
		test_proxied(&p);
		proxy_stop(&p);
	} else {
		tap_ok(0, "socksify-server starts");
		tap_diag("%s", p.logbuf);
	}
	return tap_done();
}
