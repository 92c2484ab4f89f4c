import TensorCore

/// Largest relative difference between two arrays, with `floor` guarding tiny magnitudes:
/// max_i |a_i - b_i| / max(|a_i|, |b_i|, floor).
public func maxRelativeError(_ a: [Float], _ b: [Float], floor: Float = 1e-3) -> Float {
    precondition(a.count == b.count, "length mismatch \(a.count) vs \(b.count)")
    var worst: Float = 0
    for i in 0..<a.count {
        let d = abs(a[i] - b[i]) / max(abs(a[i]), abs(b[i]), floor)
        if d > worst || d.isNaN { worst = d.isNaN ? .infinity : d }
    }
    return worst
}

/// Largest absolute difference between two arrays.
public func maxAbsoluteError(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "length mismatch \(a.count) vs \(b.count)")
    var worst: Float = 0
    for i in 0..<a.count { worst = max(worst, abs(a[i] - b[i])) }
    return worst
}
