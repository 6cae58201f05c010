/* SPDX-License-Identifier: MIT */
/*
 * waitbench: what the shim's wait hooks cost a program that has no
 * background handshake running: 2 million poll() calls on one pipe, then
 * 1 million epoll_ctl() ADD + DEL of one TCP socket (one the shim saw made,
 * so it follows its registrations). Run it directly and under socksify
 * (scripts/bench does); it prints the two times.
 */
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(void)
{
	int p[2];
	if (pipe(p) < 0)
		return 1;
	struct pollfd f = {.fd = p[1], .events = POLLOUT};
	double t0 = now_s();
	for (int i = 0; i < 2000000; i++)
		poll(&f, 1, 0);
	double pt = now_s() - t0;
	int ep = epoll_create1(0), s = socket(AF_INET, SOCK_STREAM, 0);
	struct epoll_event ev = {.events = EPOLLOUT};
	t0 = now_s();
	for (int i = 0; i < 1000000; i++) {
		epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
		epoll_ctl(ep, EPOLL_CTL_DEL, s, &ev);
	}
	double et = now_s() - t0;
	printf("2M poll() %.3f s, 1M epoll_ctl ADD+DEL %.3f s\n", pt, et);
	return 0;
}
