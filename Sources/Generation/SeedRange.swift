import Foundation

/// An inclusive range of seeds, written `A-B` (or a single `A`). Sample `s` of a generation run is
/// `(seed s, index 0)`, so seeds name samples one to one.
public struct SeedRange: Sendable, Equatable, CustomStringConvertible {
    public let first: UInt64
    public let last: UInt64

    /// At most this many samples in one run (a safety net against typos like `0-9999999999`).
    public static let maxCount: UInt64 = 1 << 32

    public init(first: UInt64, last: UInt64) throws {
        guard last >= first else {
            throw GenerationError(
                .invalidArgument, "seed range \(first)-\(last) is empty: the last seed must not be below the first")
        }
        guard last - first < Self.maxCount else {
            throw GenerationError(
                .invalidArgument,
                "seed range \(first)-\(last) has more than \(Self.maxCount) seeds; at most \(Self.maxCount) per run")
        }
        self.first = first
        self.last = last
    }

    /// Parses `A-B` or `A` (decimal, non-negative).
    public init(parsing text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces)
        let parts = t.split(separator: "-", omittingEmptySubsequences: false)
        func number(_ s: Substring) throws -> UInt64 {
            guard !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt64(s) else {
                throw GenerationError(
                    .invalidArgument,
                    "seed range '\(text)': '\(s)' is not a non-negative integer (expected A-B, e.g. 0-59999)")
            }
            return v
        }
        switch parts.count {
        case 1: let a = try number(parts[0]); try self.init(first: a, last: a)
        case 2: try self.init(first: try number(parts[0]), last: try number(parts[1]))
        default:
            throw GenerationError(
                .invalidArgument, "seed range '\(text)': expected A-B (inclusive, e.g. 0-59999) or a single seed")
        }
    }

    public var count: Int { Int(last - first + 1) }
    public var description: String { first == last ? "\(first)" : "\(first)-\(last)" }
}

/// Part `index` of `count` of a run (`--shard i/n`): the run's chunks `k` with `k % count == index`.
/// The union of all shards is the whole run, file for file.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    public static let whole = Shard(uncheckedIndex: 0, count: 1)

    private init(uncheckedIndex: Int, count: Int) {
        self.index = uncheckedIndex
        self.count = count
    }

    public init(index: Int, count: Int) throws {
        guard count >= 1, count <= 1_000_000, index >= 0, index < count else {
            throw GenerationError(.invalidArgument, "shard \(index)/\(count): need 0 <= i < n and 1 <= n <= 1000000")
        }
        self.init(uncheckedIndex: index, count: count)
    }

    /// Parses `i/n`.
    public init(parsing text: String) throws {
        let p = text.split(separator: "/", omittingEmptySubsequences: false)
        guard p.count == 2, let i = Int(p[0].trimmingCharacters(in: .whitespaces)),
            let n = Int(p[1].trimmingCharacters(in: .whitespaces))
        else {
            throw GenerationError(.invalidArgument, "shard '\(text)': expected i/n, e.g. 0/8 (0-based)")
        }
        try self.init(index: i, count: n)
    }

    public var description: String { "\(index)/\(count)" }
}
