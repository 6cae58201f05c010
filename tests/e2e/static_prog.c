/* SPDX-License-Identifier: MIT */
/*
 * static_prog: linked with -static (no PT_INTERP, so LD_PRELOAD cannot apply);
 * the launcher runs it under the supervisor, and so do the shim's exec hooks
 * when a preloaded program execs it. Without arguments it prints one line;
 * with IPV4 PORT PATH it fetches http://IPV4:PORT/PATH with static libc's
 * connect() (a raw system call the preload never sees) and prints the status
 * line, or "connect: ERRNO-TEXT" and exits 1. Other uses (shim_exec.bats):
 *   static_prog exit N     exits with status N
 *   static_prog kill SIG   raises signal number SIG on itself
 *   static_prog argv0      prints its argv[0]
 *   static_prog env NAME   prints NAME=VALUE, or "NAME unset"
 *   static_prog fds        prints its open descriptors, one line
 *   static_prog tree       prints the command name of each ancestor, one a
 *                          line, its parent first, up to pid 1
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fetch(const char *ip, const char *port, const char *path)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
	                          .sin_port = htons((uint16_t)atoi(port))};
	char buf[512];
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || inet_pton(AF_INET, ip, &sin.sin_addr) != 1)
		return 2;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		printf("connect: %s\n", strerror(errno));
		return 1;
	}
	int n = snprintf(buf, sizeof(buf), "GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n", path,
	                 ip);
	if (write(fd, buf, (size_t)n) != n)
		return 1;
	ssize_t got = read(fd, buf, sizeof(buf) - 1);
	if (got <= 0)
		return 1;
	buf[got] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	puts(buf);
	close(fd);
	return 0;
}

static int fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	if (!d)
		return 1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
			printf("%s ", e->d_name);
	closedir(d);
	puts("");
	return 0;
}

/* the parent's pid and command name of process pid, from /proc/PID/stat */
static int parent_of(int pid, char *comm, size_t cap)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = '\0';
	char *open = strchr(line, '('), *close = strrchr(line, ')');
	if (!open || !close || close[1] == '\0')
		return -1;
	snprintf(comm, cap, "%.*s", (int)(close - open - 1), open + 1);
	return atoi(close + 4); /* ") S PPID" */
}

static int tree(void)
{
	char comm[64];
	int pid = getppid();
	while (pid > 1) {
		int next = parent_of(pid, comm, sizeof(comm));
		if (next < 0)
			return 1;
		puts(comm);
		pid = next;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4)
		return fetch(argv[1], argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "exit") == 0)
		return atoi(argv[2]);
	if (argc == 3 && strcmp(argv[1], "kill") == 0)
		return raise(atoi(argv[2])) == 0 ? 0 : 1;
	if (argc == 3 && strcmp(argv[1], "env") == 0) {
		const char *v = getenv(argv[2]);
		v ? printf("%s=%s\n", argv[2], v) : printf("%s unset\n", argv[2]);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "argv0") == 0)
		return puts(argv[0]) < 0;
	if (argc == 2 && strcmp(argv[1], "fds") == 0)
		return fds();
	if (argc == 2 && strcmp(argv[1], "tree") == 0)
		return tree();
	puts("static program ran");
	return 0;
}
