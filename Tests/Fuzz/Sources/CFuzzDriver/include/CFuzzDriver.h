#ifndef SLUICE_CFUZZDRIVER_H
#define SLUICE_CFUZZDRIVER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver for a program with a main of its own (LLVM 11 and later): it parses
/// libFuzzer's flags from argc/argv and calls `callback` with each input. Defined by
/// libclang_rt.fuzzer_no_main, which only the fuzz build links (see the Makefile's fuzz target).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
