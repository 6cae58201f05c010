/* SPDX-License-Identifier: MIT */
/*
 * static_prog: linked with -static (no PT_INTERP, so LD_PRELOAD cannot apply);
 * the launcher must warn and still run it. Prints one line.
 */
#include <stdio.h>

int main(void)
{
	puts("static program ran");
	return 0;
}
