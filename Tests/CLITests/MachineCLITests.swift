import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLTensor
import NLVideo

/// The machine the commands run on, as they see it: OpenBLAS's kernel, the threads, the build's
/// x86-64 level.
struct MachineCLITests {
    /// As shipped, with no variable set, OpenBLAS runs the newest kernel the CPU allows (on a CPU
    /// newer than OpenBLAS's table, the command starts itself again with it), and says so; a
    /// user's OPENBLAS_CORETYPE wins.
    @Test func theBestKernelWithoutAVariable() throws {
        let shipped = try run(
            "/usr/bin/env",
            [
                "-u", "OPENBLAS_CORETYPE", "\(commandDirectory)/nlbench", "step", "--model", "nl_i3d_r50_tiny",
                "--steps", "1",
            ])
        #expect(shipped.status == 0, "\(shipped.stderr)")
        let kernel =
            shipped.stdout.components(separatedBy: "kernel ").last.map { String($0.prefix { $0 != " " }) } ?? ""
        if let best = BLASKernel.best(for: .current) {
            #expect(
                BLASKernel.choice(for: .current, openBLASChose: kernel) == nil && !kernel.isEmpty,
                "runs \(kernel), the CPU allows \(best): \(shipped.stdout)")
        }
        #expect(
            shipped.stdout.contains(CPUFeatures.current.model) && shipped.stdout.contains(CPUFeatures.current.vectorISA)
        )
        let forced = try run(
            "nlbench", ["step", "--model", "nl_i3d_r50_tiny", "--steps", "1"],
            environment: ["OPENBLAS_CORETYPE": "Prescott"])
        #expect(forced.status == 0 && forced.stdout.contains("kernel Prescott (OPENBLAS_CORETYPE)"), "\(forced.stdout)")
    }

    /// In bfloat16 the project's loops and oneDNN's share OpenMP's threads, which spin 100000
    /// rounds for the next loop before they sleep (GOMP_SPINCOUNT, set by the command's start again), unless the
    /// user said how they wait. libgomp shows what it runs with (OMP_DISPLAY_ENV), the last time
    /// for the image that ran.
    @Test func openMPThreadsSpinAWhileUnlessTheUserSaysOtherwise() throws {
        func spinCount(_ setting: [String]) throws -> String {
            let result = try run(
                "/usr/bin/env",
                ["-u", "OMP_WAIT_POLICY", "-u", "GOMP_SPINCOUNT", "OMP_DISPLAY_ENV=verbose"] + setting + [
                    "\(commandDirectory)/nlbench", "step", "--model", "nl_i3d_r50_tiny", "--steps", "1",
                ])
            #expect(result.status == 0, "\(result.stderr)")
            return result.stderr.components(separatedBy: "GOMP_SPINCOUNT = '").last.map {
                String($0.prefix { $0 != "'" })
            } ?? ""
        }
        #expect(try spinCount([]) == "100000")
        #expect(try spinCount(["GOMP_SPINCOUNT=5000"]) == "5000")
        #expect(try spinCount(["OMP_WAIT_POLICY=passive"]) == "0")
    }

    /// A user's OPENBLAS_CORETYPE whose kernels this CPU cannot run (SkylakeX's AVX-512 on an AVX2
    /// CPU) is refused with what it needs and exit 64, where the first sgemm died of an illegal
    /// instruction. Runs on CPUs without AVX-512; elsewhere Swift Testing reports it skipped.
    @Test(.enabled(if: !CPUFeatures.current.avx512))
    func aKernelBeyondTheCPUIsRefused() throws {
        let r = try run(
            "nlbench", ["step", "--model", "nl_i3d_r50_tiny", "--steps", "1"],
            environment: ["OPENBLAS_CORETYPE": "SkylakeX"])
        #expect(
            r.status == 64
                && r.stderr.contains(
                    "OPENBLAS_CORETYPE=SkylakeX has OpenBLAS run its SkylakeX kernels, which need AVX-512")
                && r.stderr.contains("this CPU (\(CPUFeatures.current.model)) has \(CPUFeatures.current.vectorISA)"),
            "\(r.stderr)")
    }

    /// bfloat16 precision where the CPU has no bfloat16 instructions (here made so with oneDNN's
    /// own ONEDNN_MAX_CPU_ISA, which holds it to plain AVX-512 or below) is refused with exit 64
    /// and why, by nltrain, nlbench step and nleval, never run slowly on an emulation; on such a
    /// CPU `nltrain --plan` says the same.
    @Test func bfloat16WithoutTheInstructionsIsRefused() throws {
        let work = scratchDirectory("bf16-refused")
        let config = tinyRunConfig(workDirectory: work)
        let limited = ["ONEDNN_MAX_CPU_ISA": CPUFeatures.current.avx512 ? "AVX512_CORE" : "AVX2"]
        let expected = "has neither AVX512_BF16 nor AMX, as oneDNN"
        let trained = try run(
            "nltrain", ["--config", config, "--set", "train.precision=bf16"], environment: limited)
        #expect(
            trained.status == 64 && trained.stderr.contains("train.precision = bf16: this CPU ("), "\(trained.stderr)")
        #expect(
            trained.stderr.contains(expected)
                && !FileManager.default.fileExists(atPath: "\(work)/iter_00000001.safetensors"))
        let planned = try run(
            "nltrain", ["--config", config, "--set", "train.precision=bf16", "--plan"], environment: limited)
        #expect(planned.status == 64 && planned.stderr.contains(expected), "\(planned.stderr)")
        let stepped = try run(
            "nlbench", ["step", "--model", "nl_i3d_r50_tiny", "--steps", "1", "--precision", "bf16"],
            environment: limited)
        #expect(stepped.status == 64 && stepped.stderr.contains(expected), "\(stepped.stderr)")
        let float32 = try run("nlbench", ["step", "--model", "nl_i3d_r50_tiny", "--steps", "1"], environment: limited)
        #expect(float32.status == 0 && float32.stdout.contains(" fp32 threads="), "\(float32.stderr)")
    }

    /// Without NL_THREADS a command runs a thread for each core its CPU affinity mask allows (as
    /// taskset, mpirun's binding and Slurm set it), not for each core of the machine, and says so;
    /// a user's NL_THREADS wins, then OMP_NUM_THREADS (PyTorch's), and one that is not a positive
    /// number is named in a warning.
    @Test func threadsFollowTheCoresTheProcessMayUse() throws {
        let step = ["\(commandDirectory)/nlbench", "step", "--model", "nl_i3d_r50_tiny", "--steps", "1"]
        let bound = try run("/usr/bin/env", ["-u", "NL_THREADS", "-u", "OMP_NUM_THREADS", "taskset", "-c", "0"] + step)
        #expect(
            bound.status == 0 && bound.stdout.contains(" threads=1 ") && bound.stdout.contains(", 1 thread, "),
            "\(bound.stdout)\(bound.stderr)")
        let set = try run("/usr/bin/env", ["NL_THREADS=3", "taskset", "-c", "0"] + step)
        #expect(
            set.status == 0 && set.stdout.contains(" threads=3 ")
                && set.stderr.contains("warning: NL_THREADS=3 is more than the 1 core"), "\(set.stdout)\(set.stderr)")
        let absurd = try run("/usr/bin/env", ["NL_THREADS=100000", "taskset", "-c", "0"] + step)
        #expect(
            absurd.status == 0 && absurd.stdout.contains(" threads=4 ")
                && absurd.stderr.contains("using 4 (4 a core at most)"), "\(absurd.stdout)\(absurd.stderr)")
        let omp = try run("/usr/bin/env", ["-u", "NL_THREADS", "OMP_NUM_THREADS=3,1", "taskset", "-c", "0"] + step)
        #expect(omp.status == 0 && omp.stdout.contains(" threads=3 "), "\(omp.stdout)\(omp.stderr)")
        let both = try run("/usr/bin/env", ["NL_THREADS=2", "OMP_NUM_THREADS=3", "taskset", "-c", "0"] + step)
        #expect(both.status == 0 && both.stdout.contains(" threads=2 "), "\(both.stdout)\(both.stderr)")
        let wrongOMP = try run(
            "/usr/bin/env", ["-u", "NL_THREADS", "OMP_NUM_THREADS=all", "taskset", "-c", "0"] + step)
        #expect(
            wrongOMP.status == 0 && wrongOMP.stdout.contains(" threads=1 ")
                && wrongOMP.stderr.contains("warning: OMP_NUM_THREADS='all' is not a positive whole number"),
            "\(wrongOMP.stderr)")
        let wrong = try run("/usr/bin/env", ["NL_THREADS=four", "taskset", "-c", "0"] + step)
        #expect(
            wrong.status == 0 && wrong.stdout.contains(" threads=1 ")
                && wrong.stderr.contains(
                    "warning: NL_THREADS='four' is not a positive whole number; using 1 thread, the cores this process may use"
                ), "\(wrong.stdout)\(wrong.stderr)")
        let none = try run("/usr/bin/env", ["NL_THREADS=0", "taskset", "-c", "0"] + step)
        #expect(
            none.status == 0 && none.stdout.contains(" threads=1 ")
                && none.stderr.contains("warning: NL_THREADS='0' is not a positive whole number"), "\(none.stderr)")
    }

    /// A process whose cgroup may use one CPU runs one thread, as in a container limited with
    /// docker --cpus 1: a cgroup v1 made for the test with a quota of 100 ms a 100 ms period. Runs
    /// where the cpu controller is mounted at /sys/fs/cgroup/cpu and the tests may make groups
    /// there (as root, as CI runs them); elsewhere Swift Testing reports it skipped.
    @Test(.enabled(if: FileManager.default.isWritableFile(atPath: "/sys/fs/cgroup/cpu")))
    func aCPUQuotaSetsTheThreads() throws {
        let group = "/sys/fs/cgroup/cpu/nl-test-\(getpid())"
        try FileManager.default.createDirectory(atPath: group, withIntermediateDirectories: false)
        defer { rmdir(group) }
        try "100000".write(toFile: "\(group)/cpu.cfs_period_us", atomically: false, encoding: .utf8)
        try "100000".write(toFile: "\(group)/cpu.cfs_quota_us", atomically: false, encoding: .utf8)
        let step = "env -u NL_THREADS \(commandDirectory)/nlbench step --model nl_i3d_r50_tiny --steps 1"
        let r = try run("/bin/sh", ["-c", "echo $$ > \(group)/cgroup.procs && exec \(step)"])
        #expect(r.status == 0 && r.stdout.contains(" threads=1 "), "\(r.stdout)\(r.stderr)")
    }

    /// A binary built for x86-64-v4 (AVX-512) refuses to start, with a message, where the CPU lacks
    /// it, and runs where it has it: Sources/CBuildTarget's check, compiled here with cc.
    @Test func aBuildForANewerCPUSaysSo() throws {
        let dir = scratchDirectory("files", made: true),
            source = "\(repositoryRoot)/Sources/CBuildTarget"
        try "int main(void) { return 0; }\n".write(toFile: "\(dir)/main.c", atomically: true, encoding: .utf8)
        let built = try run(
            "/usr/bin/env",
            [
                "cc", "-DNL_BUILD_LEVEL=4", "-I", "\(source)/include", "\(source)/build_target.c", "\(dir)/main.c",
                "-o", "\(dir)/v4",
            ])
        #expect(built.status == 0, "\(built.stderr)")
        let r = try run("\(dir)/v4", [])
        if BuildTarget.cpuRuns(level: 4) {
            #expect(r.status == 0)
        } else {
            #expect(
                r.status == 70 && r.stderr.contains("compiled for x86-64-v4 (AVX-512), which this CPU lacks")
                    && r.stderr.contains("make build"), "\(r.stderr)")
        }
    }
}
