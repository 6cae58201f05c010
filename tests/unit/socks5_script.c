/* SPDX-License-Identifier: MIT */
/* What the SOCKS5 client's tests share (see socks5_script.h). */
#include "socks5_script.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "shim.h"

void script_set_auth(bool on)
{
	struct config_proxy *p = &shim_config.proxy;

	p->has_auth = on;
	strcpy(p->user, on ? "user" : "");
	strcpy(p->pass, on ? "secret" : "");
}

int script_listen_loopback(uint16_t *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(fd, 4) < 0 || getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		abort();
	*port = ntohs(sin.sin_port);
	return fd;
}
