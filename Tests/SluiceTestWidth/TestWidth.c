// A plain `swift test` runs every test of the package at once: 800 tests, each with its own
// redis-server, on 2 cores, where tests that wait on a deadline then fail for want of CPU.
// `make test` bounds it with SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH; this constructor,
// run by the test bundle before Swift Testing reads its configuration, gives a plain
// `swift test` the same default. A value already in the environment is kept (overwrite = 0).
#include <stdlib.h>

__attribute__((constructor)) static void sluiceTestWidth(void) {
    setenv("SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH", "8", 0);
}
