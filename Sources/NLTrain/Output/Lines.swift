import Foundation
import NLData
import NLTensor

/// One line of JSON with the keys sorted.
func jsonLine(_ values: [String: Any]) -> String {
    let data = try! JSONSerialization.data(withJSONObject: values, options: [.sortedKeys, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self)
}

func timestamp() -> String {
    let formatter = DateFormatter()
    formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
    return formatter.string(from: Date())
}
