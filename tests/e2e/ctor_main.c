/* SPDX-License-Identifier: MIT */
/*
 * ctor_main: a program linked against libsxctor.so (see ctor.c), whose
 * constructor runs before main() and before the preloaded shim's. Exits with
 * the constructor's status: 0 passed, 1 failed, 2 did nothing.
 */
#include <stdio.h>

int sxctor_status(void);

int main(void)
{
	int st = sxctor_status();
	printf("main: the constructor's status is %d\n", st);
	return st;
}
