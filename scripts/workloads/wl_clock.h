/* The workloads' clock: seconds on CLOCK_MONOTONIC, for their time limits and rates. */
#ifndef BDT_WL_CLOCK_H
#define BDT_WL_CLOCK_H
#include <time.h>

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}
#endif
