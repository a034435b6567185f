// The x86-64 level the Swift code was compiled for (make build chooses the machine's own; see
// scripts/make/target-cpu.sh), and whether this CPU runs it. Only NLTensor imports this module.
#ifndef NL_BUILD_TARGET_H
#define NL_BUILD_TARGET_H

/// 1 (baseline x86-64, SSE2), 3 (x86-64-v3: AVX2, FMA, BMI2) or 4 (x86-64-v4: AVX-512 F/BW/CD/DQ/VL).
int nl_build_level(void);

/// Whether this CPU (and its OS) runs code compiled for `level`.
int nl_cpu_runs_level(int level);

#endif
