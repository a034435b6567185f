import Foundation
import NLTestSupport
import NLTrain
import Testing
import NLData
import NLLayers
import NLModels
import NLTensor
import NLVideo

struct ConfigTests {
    let directory = scratchDirectory("config", made: true)

    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        let path = "\(directory)/\(name)"
        try! text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func expectError(
        _ text: String, at line: Int, containing fragment: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let path = write("bad.cfg", text)
        do {
            _ = try Config(path: path)
            Issue.record("no error for: \(text)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.source.file == path && error.source.line == line, "\(error)", sourceLocation: sourceLocation)
            #expect(error.description.contains(fragment), "\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func readsSectionsValuesCommentsAndQuotes() throws {
        let path = write(
            "a.cfg",
            """
            # a comment
            [model]
            name = i3d_r50        # a trailing comment
            num_classes = 7
            non_local = 0 0101 010101 0
            [data]
            root = "videos with spaces/#1"
            train_short_side = 256 320
            mean = 1, 2.5, 3
            [train]
            lr = 1e-3
            nesterov = yes
            """)
        let config = try Config(path: path)
        #expect(config.model.name == "i3d_r50" && config.model.spec.numClasses == 7)
        #expect(config.model.spec.nonLocalPerBlock == [[0, 0, 0], [0, 1, 0, 1], [0, 1, 0, 1, 0, 1], [0, 0, 0]])
        #expect(config.data.root == "videos with spaces/#1")
        #expect(config.data.trainShortSide == [256, 320] && config.data.mean == [1, 2.5, 3])
        #expect(config.train.lr == 0.001 && config.train.nesterov)
    }

    @Test func includesAreOverriddenByLaterLinesAndSet() throws {
        write("base.cfg", "[train]\nlr = 0.1\nepochs = 10\n[model]\nnum_classes = 3\n")
        let path = write("child.cfg", "include = base.cfg\n[train]\nlr = 0.2\n")
        let config = try Config(path: path, overrides: ["train.epochs=20"])
        #expect(config.train.lr == 0.2 && config.train.epochs == 20 && config.model.spec.numClasses == 3)
        #expect(
            config.sources["train.lr"]?.line == 3 && config.sources["train.epochs"]?.file.hasPrefix("--set") == true)
    }

    @Test func errorsNameTheFileTheLineAndTheNearestKey() {
        expectError("[train]\nlr = 0.1\nlearning_rat = 3\n", at: 3, containing: "unknown key 'learning_rat'")
        expectError("[train]\nepoch = 3\n", at: 2, containing: "did you mean 'epochs'?")
        expectError("[trian]\nlr = 1\n", at: 1, containing: "did you mean [train]?")
        expectError("[train]\nlr = 1\n[trian]\n", at: 3, containing: "unknown section [trian]")  // empty, still unknown
        expectError("[train]\nlr = 0x10\n", at: 2, containing: "expected a number, got '0x10'")
        expectError("[train]\nlr = 1e-400\n", at: 2, containing: "beyond the range")
        expectError("[train]\nlr = 1e400\n", at: 2, containing: "beyond the range")
        expectError("[train]\nlr = nan\n", at: 2, containing: "expected a number")
        expectError(
            "[train]\nbatch_size = eight\n", at: 2, containing: "train.batch_size: expected auto or a whole number")
        expectError("[train]\nbatch_size = 0\n", at: 2, containing: "outside 1...4096")
        expectError("[model]\nnon_local_mode = gausian\n", at: 2, containing: "expected one of embedded_gaussian")
        expectError("[model]\nname = resnet\n", at: 2, containing: "no model 'resnet'")
        expectError("lr = 1\n", at: 1, containing: "outside any [section]")
        expectError("[train]\njust words\n", at: 2, containing: "expected 'key = value'")
        expectError("include = missing.cfg\n", at: 1, containing: "include missing.cfg: no such config file")
        expectError("[model]\ndepth = 101\n", at: 2, containing: "inflate needs 4 stages")
    }

    /// A config saved on Windows (CRLF), on an old Mac (CR), with a byte-order mark or trailing
    /// blanks reads as the same config, includes too.
    @Test func lineEndsAndByteOrderMarks() throws {
        let text = "# a comment\n[train]\nlr = 0.5   \nepochs = 7\t\n[data]\nroot = \"a b\"\ninclude = base.cfg\n"
        write("base.cfg", "[model]\r\nnum_classes = 9\r\n")
        for (name, variant) in [
            ("lf", text), ("crlf", text.replacingOccurrences(of: "\n", with: "\r\n")),
            ("cr", text.replacingOccurrences(of: "\n", with: "\r")), ("bom", "\u{FEFF}" + text),
        ] {
            let config = try Config(path: write("\(name).cfg", variant))
            #expect(
                config.train.lr == 0.5 && config.train.epochs == 7 && config.data.root == "a b"
                    && config.model.spec.numClasses == 9, "\(name)")
            #expect(config.sources["train.epochs"]?.line == 4, "\(name)")
        }
        expectError("[train]\r\nlr = 1\r\nepochs = x\r\n", at: 3, containing: "expected a whole number, got 'x'")
    }

    @Test func unreadableConfigsSayWhy() {
        for (path, fragment) in [
            (directory, "is a directory"), ("/proc/self/mem", "cannot read the config file"),
            ("\(directory)/none.cfg", "no such config file"),
        ] {
            do { _ = try Config(path: path); Issue.record("read \(path)") } catch {
                #expect(error.description.hasPrefix(path) && error.description.contains(fragment), "\(error)")
            }
        }
        let utf16 = "\(directory)/utf16.cfg"
        try! "[train]\nlr = 1\n".data(using: .utf16)!.write(to: URL(fileURLWithPath: utf16))
        #expect(throws: ConfigError.self) { try Config(path: utf16) }
        let latin1 = "\(directory)/latin1.cfg"
        try! Data("[data]\nroot = caf\u{E9}\n".data(using: .isoLatin1)!).write(to: URL(fileURLWithPath: latin1))
        do { _ = try Config(path: latin1) } catch {
            #expect(error.description == "\(latin1):2: not UTF-8 text; save the file as UTF-8")
        }
    }

    @Test func requiredKeysMustNotBeEmpty() throws {
        let config = try Config(
            path: nil, overrides: ["train.work_dir=", "data.root=/videos", "data.train_annotations=a.csv"])
        do {
            try config.require(["data.root", "data.train_annotations", "train.work_dir"], by: "nltrain");
            Issue.record("no error")
        } catch {
            #expect(error.description.contains("train.work_dir is empty; nltrain needs it"), "\(error)")
        }
    }

    @Test func includeCyclesAreErrors() {
        write("x.cfg", "include = y.cfg\n")
        let path = write("y.cfg", "include = x.cfg\n")
        #expect(throws: ConfigError.self) { try Config(path: path) }
    }

    @Test func overridesNeedSectionAndKey() {
        #expect(throws: ConfigError.self) { try Config(path: nil, overrides: ["lr=0.1"]) }
        #expect(throws: ConfigError.self) { try Config(path: nil, overrides: ["train.nope=1"]) }
    }

    /// The resolved text lists every key and reads back as the same configuration.
    @Test func resolvedTextRoundTrips() throws {
        let config = try Config(
            path: nil,
            overrides: [
                "model.name=gc_i3d_r50", "train.lr=0.05", "data.root=/data/k400",
                "model.context_fusion=channel_add channel_mul",
            ])
        let text = config.text
        for (section, key, _, _) in Config.documentation { #expect(text.contains("\n\(key) = "), "\(section).\(key)") }
        let again = try Config(ConfigFile(text: text, name: "resolved"))
        #expect(again.text == text)
        #expect(again.model.spec == config.model.spec && again.train.lr == 0.05)
    }

    @Test func requiredKeysAreNamed() throws {
        let config = try Config(path: nil, overrides: ["data.root=/x"])
        #expect(throws: ConfigError.self) {
            try config.require(["data.root", "data.train_annotations"], by: "nltrain")
        }
        do { try config.require(["data.train_annotations"], by: "nltrain") } catch {
            #expect(error.message.contains("--set data.train_annotations="))
        }
    }

    static let configsDirectory = "\(repositoryRoot)/configs"

    /// The key tables of configs/README.md, as the schema makes them: every key of a section,
    /// in order, with its default and meaning. Each key's one declaration (its field's `@Key`)
    /// makes its row; with NL_UPDATE_DOCS=1 this test writes them there.
    static func keyTable(_ section: String) -> String {
        let rows = Config.documentation.filter { $0.section == section }.map { _, key, value, help in
            "| `\(key)` | \(value.isEmpty ? "(empty)" : "`\(value)`") | \(help) |"
        }
        return (["| key | default | meaning |", "| --- | --- | --- |"] + rows).joined(separator: "\n")
    }

    /// Every `@Key` declared on a section's fields (ModelSpec's and Mixing's included) is listed
    /// in the schema once, and under its own section: a key declared and not listed would be
    /// neither read nor shown.
    @Test func everyDeclaredKeyIsInTheSchema() {
        func declaredKeys(_ value: Any) -> [String] {
            Mirror(reflecting: value).children.flatMap { child -> [String] in
                guard String(describing: type(of: child.value)).hasPrefix("Key<") else {
                    return declaredKeys(child.value)
                }
                return Mirror(reflecting: child.value).children.filter { $0.label == "name" }.map { "\($0.value)" }
            }
        }
        let config = Config()
        let sections: [(String, Any)] = [
            ("model", config.model), ("data", config.data), ("train", config.train), ("eval", config.eval),
        ]
        for (section, value) in sections {
            let listed = Config.documentation.filter { $0.section == section }.map(\.key)
            let declared = declaredKeys(value)
            #expect(
                Set(declared) == Set(listed),
                "[\(section)]: declared, not listed: \(Set(declared).subtracting(listed).sorted()); listed, not declared: \(Set(listed).subtracting(declared).sorted())"
            )
            #expect(Set(listed).count == listed.count, "[\(section)] lists a key twice")
        }
    }

    @Test func theKeyTablesAreTheSchemas() throws {
        let path = "\(Self.configsDirectory)/README.md"
        var readme = try String(contentsOfFile: path, encoding: .utf8)
        for section in ["model", "data", "train", "eval"] {
            let heading = "### [\(section)]\n\n"
            guard let start = readme.range(of: heading)?.upperBound else {
                Issue.record("no \(heading) in configs/README.md"); continue
            }
            // the file's last line
            let end = readme[start...].range(of: "\n\n")?.lowerBound ?? readme.index(before: readme.endIndex)
            let expected = Self.keyTable(section)
            if ProcessInfo.processInfo.environment["NL_UPDATE_DOCS"] == "1" {
                readme.replaceSubrange(start..<end, with: expected)
            } else {
                #expect(
                    String(readme[start..<end]) == expected,
                    "configs/README.md's [\(section)] table; NL_UPDATE_DOCS=1 rewrites it")
            }
        }
        if ProcessInfo.processInfo.environment["NL_UPDATE_DOCS"] == "1" {
            try readme.write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    /// Every shipped config resolves, and the recipes say what their comments say.
    @Test func shippedConfigsResolve() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.configsDirectory).filter {
            $0.hasSuffix(".cfg")
        }
        #expect(
            Set(files).isSuperset(of: [
                "i3d_nl.cfg", "i3d_nl_8x8.cfg", "i3d.cfg", "gc_i3d.cfg", "demo.cfg", "finetune_folders.cfg",
            ]))
        for file in files { _ = try Config(path: "\(Self.configsDirectory)/\(file)") }
        let nl = try Config(path: "\(Self.configsDirectory)/i3d_nl.cfg")
        #expect(
            nl.model.name == "nl_i3d_r50" && nl.data.clipLength == 32 && nl.data.frameInterval == 2
                && nl.data.trainShortSide == [256])
        #expect(
            nl.data.trainCrop == .multiscale && nl.data.multiscaleScales == [1, 0.8] && nl.data.multiscaleMaxWHGap == 0,
            "mmaction2's recipe")
        #expect(
            nl.train.lr == 0.01 && nl.train.lrSteps == [40, 80] && nl.train.epochs == 100 && nl.train.gradClip == 40)
        #expect(nl.train.keepCheckpoints == 5 && nl.train.checkpointEvery == 1 && nl.model.spec.dropout == 0.5)
        let fast = try Config(path: "\(Self.configsDirectory)/i3d_nl_8x8.cfg")
        #expect(
            fast.data.clipLength == 8 && fast.data.frameInterval == 8 && fast.train.lrPolicy == .cosine
                && fast.train.preciseBNBatches == 200)
        #expect(fast.model.spec.nonLocal == nl.model.spec.nonLocal && fast.model.spec.conv1StrideT == 1)
        #expect(fast.data.trainShortSide == [256, 320] && fast.data.trainCrop == .random, "PySlowFast's recipe")
        let finetune = try Config(path: "\(Self.configsDirectory)/finetune_folders.cfg")
        #expect(finetune.model.spec.nonLocal == nl.model.spec.nonLocal && finetune.data.format == .folders)
        #expect(
            finetune.model.spec.normEval && finetune.model.spec.frozenStages == 1
                && abs(finetune.train.lr - 0.01 / 64 * 8 / 2) < 1e-12)
    }
}
