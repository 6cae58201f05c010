/* SPDX-License-Identifier: MIT */
/*
 * Lookups in /etc/hosts without the resolver (which would go on to DNS):
 * names found there are resolved locally even in remote DNS mode, and
 * reverse lookups of their addresses give their names back.
 */
#ifndef SOCKSIFY_SHIM_HOSTS_H
#define SOCKSIFY_SHIM_HOSTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Always /etc/hosts, which `ip netns exec` and mount namespaces can replace. */
bool hosts_has_name(const char *name);
/* Copies the first name of sa's address; its length, or -ENOENT. */
int hosts_name_for(const struct sockaddr *sa, char *name, size_t cap);

#endif
