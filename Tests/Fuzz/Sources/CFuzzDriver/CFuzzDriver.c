// Declarations only: LLVMFuzzerRunDriver comes from the toolchain's libFuzzer in the fuzz build.
#include "CFuzzDriver.h"
