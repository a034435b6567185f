// swift-tools-version:6.0
// The Non-local I3D training pipeline: FFmpeg decoding, a Kinetics-style loader, a deep-learning
// core on OpenBLAS, and the nltrain / nleval / nlpredict / nlmodel / nlvideo / nlbench commands.
// Layout and contracts: README.md and docs/internals.md.
import PackageDescription

let package = Package(
    name: "NonLocalVideo",
    products: [
        .executable(name: "nltrain", targets: ["nltrain"]),
        .executable(name: "nleval", targets: ["nleval"]),
        .executable(name: "nlpredict", targets: ["nlpredict"]),
        .executable(name: "nlmodel", targets: ["nlmodel"]),
        .executable(name: "nlvideo", targets: ["nlvideo"]),
        .executable(name: "nlbench", targets: ["nlbench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        // C libraries, each wrapped by exactly one Swift module.
        .systemLibrary(
            name: "CFFmpeg", pkgConfig: "libavformat libavcodec libswscale libavutil",
            providers: [.apt(["libavformat-dev", "libavcodec-dev", "libswscale-dev", "libavutil-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        // Which x86-64 level the Swift code is built for, checked against the CPU before main.
        .target(name: "CBuildTarget"),

        // Libraries, lowest first: a module never imports one listed after it.
        .target(name: "NLKeys"),  // config keys declared on their fields, and reading their values
        .target(name: "NLTensor", dependencies: ["COpenBLAS", "CBuildTarget"]),
        .target(name: "NLLayers", dependencies: ["NLTensor", "CDNNL"]),
        .target(name: "NLModels", dependencies: ["NLKeys", "NLLayers"]),
        .target(name: "NLVideo", dependencies: ["CFFmpeg"]),
        .target(name: "NLData", dependencies: ["NLVideo", "NLTensor"]),
        .target(name: "NLDistributed", dependencies: ["CMPI"]),
        .target(name: "NLTrain", dependencies: ["NLKeys", "NLModels", "NLData", "NLDistributed"]),
        .target(name: "NLBench", dependencies: ["NLTrain"]),
        // What the commands share: --config/--set, argument types, the one exit path.
        .target(name: "NLCommands", dependencies: ["NLTrain", argumentParser]),

        // Executables: argument parsing and wiring only.
        .executableTarget(name: "nltrain", dependencies: ["NLCommands", argumentParser]),
        .executableTarget(name: "nleval", dependencies: ["NLCommands", argumentParser]),
        .executableTarget(name: "nlpredict", dependencies: ["NLCommands", argumentParser]),
        .executableTarget(name: "nlmodel", dependencies: ["NLCommands", argumentParser]),
        .executableTarget(name: "nlvideo", dependencies: ["NLCommands", argumentParser]),
        .executableTarget(name: "nlbench", dependencies: ["NLCommands", "NLBench", argumentParser]),

        // Helpers the test targets share: fixtures, error measures, central differences.
        .target(name: "NLTestSupport", dependencies: ["NLTrain"], path: "Tests/NLTestSupport"),
        .testTarget(name: "NLTensorTests", dependencies: ["NLTensor", "NLTestSupport"]),
        .testTarget(
            name: "NLLayersTests", dependencies: ["NLLayers", "CDNNL", "NLTestSupport"], exclude: ["Fixtures"]),
        .testTarget(
            name: "NLModelsTests", dependencies: ["NLModels", "NLTrain", "NLTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "NLVideoTests", dependencies: ["NLVideo", "NLTestSupport"]),
        .testTarget(name: "NLDataTests", dependencies: ["NLData", "NLTestSupport"]),
        .testTarget(name: "NLTrainTests", dependencies: ["NLTrain", "NLTestSupport"], exclude: ["Fixtures"]),
        // End-to-end tests of the built commands.
        .testTarget(name: "CLITests", dependencies: ["NLTrain", "NLTestSupport"], exclude: ["Help"]),
    ]
)

var argumentParser: Target.Dependency { .product(name: "ArgumentParser", package: "swift-argument-parser") }
