import NLKeys

/// A key of the config as the schema holds it: the name and help its field's `@Key` declares,
/// and how a value is read into, and shown from, a whole config.
struct Setting {
    let key: String
    let help: String
    let read: (inout Config, String) throws -> Void
    let show: (Config) -> String

    init<Value>(_ path: WritableKeyPath<Config, Key<Value>>, _ defaults: Config) {
        key = defaults[keyPath: path].name
        help = defaults[keyPath: path].help
        read = { config, text in try config[keyPath: path].read(text) }
        show = { $0[keyPath: path].text }
    }
}
