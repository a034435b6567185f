#!/usr/bin/env bash
# The CPU to compile the project's own loops for on this machine and its x86-64 level: LLVM's
# skylake-avx512 (x86-64-v4: AVX-512 F, BW, CD, DQ, VL) with AVX-512, haswell (x86-64-v3: AVX2,
# FMA, BMI2) with AVX2, else x86-64 (Swift's clang importer knows the CPUs, not the level names).
# Measured on an AMD EPYC (AVX2): x86-64-v3 makes the training step 2-8% faster than baseline
# x86-64 (its element-wise loops, BatchNorm, pooling, SGD). A binary built for a level refuses,
# with a message, to start on a CPU without it (Sources/CBuildTarget).
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { for f in "$@"; do [[ $flags == *" $f "* ]] || return 1; done; }
if has avx512f avx512bw avx512cd avx512dq avx512vl avx2 fma bmi1 bmi2 f16c movbe abm; then echo "skylake-avx512 4"
elif has avx2 fma bmi1 bmi2 f16c movbe abm; then echo "haswell 3"
else echo "x86-64 1"; fi
