import NLTensor
import NLVideo

/// A dataset that cannot be used: a missing or unreadable annotation file, no usable entry, too
/// many broken videos. Commands exit with 65 for these.
public struct DataError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
