// Compiled without the Swift code's -target-cpu, so it runs on any x86-64: before main, a binary
// built for a newer level than this CPU has stops with a message instead of dying on its first
// AVX instruction (SIGILL).
#include "build_target.h"
#include <stdio.h>
#include <unistd.h>

#ifndef NL_BUILD_LEVEL
#define NL_BUILD_LEVEL 1
#endif

int nl_build_level(void) { return NL_BUILD_LEVEL; }

int nl_cpu_runs_level(int level) {
    __builtin_cpu_init();  // compiler-rt's checks include the OS saving the AVX/AVX-512 registers
    if (level >= 3 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi")
                        && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("popcnt"))) return 0;
    if (level >= 4 && !(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd")
                        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))) return 0;
    return 1;
}

__attribute__((constructor)) static void nl_refuse_a_cpu_too_old(void) {
    if (nl_cpu_runs_level(NL_BUILD_LEVEL)) return;
    fprintf(stderr, "this build is compiled for x86-64-v%d (%s), which this CPU lacks: it was built on a newer machine. "
            "Rebuild here with `make build`, or for any x86-64 with `make build TARGET_CPU=x86-64`.\n",
            NL_BUILD_LEVEL, NL_BUILD_LEVEL == 4 ? "AVX-512" : "AVX2 and FMA");
    _exit(70);
}
