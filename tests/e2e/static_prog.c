/* SPDX-License-Identifier: MIT */
/*
 * static_prog: linked with -static (no PT_INTERP, so LD_PRELOAD cannot apply);
 * the launcher runs it under the supervisor. Without arguments it prints one
 * line; with IPV4 PORT PATH it fetches http://IPV4:PORT/PATH with static
 * libc's connect() (a raw system call the preload never sees) and prints the
 * status line, or "connect: ERRNO-TEXT" and exits 1.
 */
#include <arpa/inet.h>
#include <errno.h>
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

int main(int argc, char **argv)
{
	if (argc == 4)
		return fetch(argv[1], argv[2], argv[3]);
	puts("static program ran");
	return 0;
}
