import NLData
import NLTrain

/// What the decode and loader benchmarks measure: clips made in so many seconds.
public struct Throughput: Sendable {
    public let clips: Int
    public let seconds: Double
    public var clipsPerSecond: Double { Double(clips) / seconds }
}
