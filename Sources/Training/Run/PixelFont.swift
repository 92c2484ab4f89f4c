/// A 3x5 pixel font for the numbers on plot axes: digits, `.`, `-`, `+`, `e`. Each glyph is five
/// rows of three bits (most significant bit leftmost); drawn at an integer scale.
public enum PixelFont {
    static let glyphs: [Character: [UInt8]] = [
        "0": [0b111, 0b101, 0b101, 0b101, 0b111], "1": [0b010, 0b110, 0b010, 0b010, 0b111],
        "2": [0b111, 0b001, 0b111, 0b100, 0b111], "3": [0b111, 0b001, 0b111, 0b001, 0b111],
        "4": [0b101, 0b101, 0b111, 0b001, 0b001], "5": [0b111, 0b100, 0b111, 0b001, 0b111],
        "6": [0b111, 0b100, 0b111, 0b101, 0b111], "7": [0b111, 0b001, 0b001, 0b001, 0b001],
        "8": [0b111, 0b101, 0b111, 0b101, 0b111], "9": [0b111, 0b101, 0b111, 0b001, 0b111],
        ".": [0b000, 0b000, 0b000, 0b000, 0b010], "-": [0b000, 0b000, 0b111, 0b000, 0b000],
        "+": [0b000, 0b010, 0b111, 0b010, 0b000], "e": [0b000, 0b111, 0b111, 0b100, 0b111],
    ]

    /// Whether every character of `text` has a glyph.
    public static func canDraw(_ text: String) -> Bool { text.allSatisfy { glyphs[$0] != nil } }

    /// Width in pixels of `text` (glyphs 3 wide, one column apart, times `scale`).
    public static func width(_ text: String, scale: Int) -> Int { text.isEmpty ? 0 : (4 * text.count - 1) * scale }

    /// Height in pixels of a line at `scale`.
    public static func height(scale: Int) -> Int { 5 * scale }

    /// Calls `set` for each lit pixel of `text` with its top-left corner at (x, y); characters
    /// without a glyph are skipped (their space kept).
    public static func draw(_ text: String, x: Int, y: Int, scale: Int, _ set: (Int, Int) -> Void) {
        for (i, ch) in text.enumerated() {
            guard let rows = glyphs[ch] else { continue }
            let gx = x + 4 * i * scale
            for (r, bits) in rows.enumerated() {
                for c in 0..<3 where bits & (0b100 >> UInt8(c)) != 0 {
                    for dy in 0..<scale { for dx in 0..<scale { set(gx + c * scale + dx, y + r * scale + dy) } }
                }
            }
        }
    }

    /// A tick label for `value`: integers as digits (up to 7), else `%g` (which these glyphs cover).
    public static func label(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e7 { return String(Int(value)) }
        return String(format: "%g", value)
    }

    /// A decade label for 10^p on a log axis, at most four characters: 1 ... 1000, 0.1, 0.01, else 1eP.
    public static func decade(_ p: Int) -> String {
        switch p {
        case 0...3: return "1" + String(repeating: "0", count: p)
        case -2 ... -1: return "0." + String(repeating: "0", count: -p - 1) + "1"
        default: return "1e\(p)"
        }
    }
}
