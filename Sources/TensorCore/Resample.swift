/// Resampling on stacks of planes `[P, H, W]` (for CBHW activations, P = C*B). Forward functions
/// overwrite their output; backward functions ACCUMULATE into `dx`.
public enum Resample {
    /// y [P, 2H, 2W]: each input pixel repeated into a 2x2 block (nearest-neighbour upsampling by 2).
    public static func upsampleNearest2x(
        _ x: UnsafePointer<Float>, planes: Int, height h: Int, width w: Int,
        y: UnsafeMutablePointer<Float>
    ) {
        let w2 = 2 * w
        for p in 0..<planes {
            let src = x + p * h * w, dst = y + p * 4 * h * w
            for i in 0..<h {
                let s = src + i * w, d0 = dst + (2 * i) * w2
                for j in 0..<w {
                    let v = s[j]
                    d0[2 * j] = v
                    d0[2 * j + 1] = v
                }
                (d0 + w2).update(from: d0, count: w2)
            }
        }
    }

    /// dx [P, H, W] += sum of each 2x2 block of dy [P, 2H, 2W].
    public static func upsampleNearest2xBackward(
        dy: UnsafePointer<Float>, planes: Int, height h: Int, width w: Int,
        dx: UnsafeMutablePointer<Float>
    ) {
        let w2 = 2 * w
        for p in 0..<planes {
            let src = dy + p * 4 * h * w, dst = dx + p * h * w
            for i in 0..<h {
                let r0 = src + (2 * i) * w2, r1 = r0 + w2, d = dst + i * w
                for j in 0..<w {
                    d[j] += (r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1])
                }
            }
        }
    }

    /// NHWC: y [B, 2H, 2W, C], each input pixel's channel vector repeated into a 2x2 block.
    public static func upsampleNearest2xNHWC(
        _ x: UnsafePointer<Float>, batch: Int, height h: Int, width w: Int,
        channels c: Int, y: UnsafeMutablePointer<Float>
    ) {
        let row = 2 * w * c
        parallelFor(batch * h, work: 4 * w * c) { r in
            let src = x + r * w * c, d0 = y + 2 * r * row
            for j in 0..<w {
                (d0 + 2 * j * c).update(from: src + j * c, count: c)
                (d0 + (2 * j + 1) * c).update(from: src + j * c, count: c)
            }
            (d0 + row).update(from: d0, count: row)
        }
    }

    /// NHWC: dx [B, H, W, C] += sum of each 2x2 block of dy [B, 2H, 2W, C].
    public static func upsampleNearest2xBackwardNHWC(
        dy: UnsafePointer<Float>, batch: Int, height h: Int, width w: Int,
        channels c: Int, dx: UnsafeMutablePointer<Float>
    ) {
        let row = 2 * w * c
        parallelFor(batch * h, work: 4 * w * c) { r in
            let r0 = dy + 2 * r * row, r1 = r0 + row, d = dx + r * w * c
            for j in 0..<w {
                let a = r0 + 2 * j * c, b = r1 + 2 * j * c, o = d + j * c
                for k in 0..<c { o[k] += (a[k] + a[c + k]) + (b[k] + b[c + k]) }
            }
        }
    }

    /// y [P, H/2, W/2] = mean of each 2x2 block of x [P, H, W]. Requires even H and W.
    public static func avgPool2x2(
        _ x: UnsafePointer<Float>, planes: Int, height h: Int, width w: Int,
        y: UnsafeMutablePointer<Float>
    ) {
        precondition(h % 2 == 0 && w % 2 == 0, "avgPool2x2 needs even sizes, got \(h)x\(w)")
        let ho = h / 2, wo = w / 2
        for p in 0..<planes {
            let src = x + p * h * w, dst = y + p * ho * wo
            for i in 0..<ho {
                let r0 = src + (2 * i) * w, r1 = r0 + w, d = dst + i * wo
                for j in 0..<wo {
                    d[j] = 0.25 * ((r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1]))
                }
            }
        }
    }

    /// dx [P, H, W] += dy / 4 spread over each 2x2 block. Requires even H and W (the input's sizes).
    public static func avgPool2x2Backward(
        dy: UnsafePointer<Float>, planes: Int, height h: Int, width w: Int,
        dx: UnsafeMutablePointer<Float>
    ) {
        precondition(h % 2 == 0 && w % 2 == 0, "avgPool2x2 needs even sizes, got \(h)x\(w)")
        let ho = h / 2, wo = w / 2
        for p in 0..<planes {
            let src = dy + p * ho * wo, dst = dx + p * h * w
            for i in 0..<ho {
                let s = src + i * wo, r0 = dst + (2 * i) * w, r1 = r0 + w
                for j in 0..<wo {
                    let g = 0.25 * s[j]
                    r0[2 * j] += g; r0[2 * j + 1] += g
                    r1[2 * j] += g; r1[2 * j + 1] += g
                }
            }
        }
    }

    /// y [P] = mean of each plane of x [P, hw].
    public static func globalAvgPool(
        _ x: UnsafePointer<Float>, planes: Int, hw: Int,
        y: UnsafeMutablePointer<Float>
    ) {
        let inv = 1 / Float(hw)
        for p in 0..<planes { y[p] = Im2colConvolution.rowSum(x + p * hw, hw) * inv }
    }

    /// dx [P, hw] += dy[p] / hw over each plane.
    public static func globalAvgPoolBackward(
        dy: UnsafePointer<Float>, planes: Int, hw: Int,
        dx: UnsafeMutablePointer<Float>
    ) {
        let inv = 1 / Float(hw)
        for p in 0..<planes {
            let g = dy[p] * inv, d = dx + p * hw
            for j in 0..<hw { d[j] += g }
        }
    }
}

extension Reference {
    /// Naive nearest 2x upsampling: y[p, i, j] = x[p, i/2, j/2], y [P, 2H, 2W].
    public static func upsampleNearest2x(
        _ x: UnsafePointer<Float>, planes: Int, height h: Int, width w: Int,
        y: UnsafeMutablePointer<Float>
    ) {
        for p in 0..<planes {
            for i in 0..<(2 * h) {
                for j in 0..<(2 * w) {
                    y[(p * 2 * h + i) * 2 * w + j] = x[(p * h + i / 2) * w + j / 2]
                }
            }
        }
    }

    /// Naive adjoint of nearest 2x upsampling: dx[p, i/2, j/2] += dy[p, i, j] (Double sums).
    public static func upsampleNearest2xBackward(
        dy: UnsafePointer<Float>, planes: Int, height h: Int, width w: Int,
        dx: UnsafeMutablePointer<Float>
    ) {
        var acc = [Double](repeating: 0, count: planes * h * w)
        for p in 0..<planes {
            for i in 0..<(2 * h) {
                for j in 0..<(2 * w) {
                    acc[(p * h + i / 2) * w + j / 2] += Double(dy[(p * 2 * h + i) * 2 * w + j])
                }
            }
        }
        for i in 0..<acc.count { dx[i] = Float(Double(dx[i]) + acc[i]) }
    }

    /// Naive 2x2 average pooling, y [P, H/2, W/2] (Double sums).
    public static func avgPool2x2(
        _ x: UnsafePointer<Float>, planes: Int, height h: Int, width w: Int,
        y: UnsafeMutablePointer<Float>
    ) {
        var acc = [Double](repeating: 0, count: planes * (h / 2) * (w / 2))
        for p in 0..<planes {
            for i in 0..<h {
                for j in 0..<w {
                    acc[(p * (h / 2) + i / 2) * (w / 2) + j / 2] += Double(x[(p * h + i) * w + j])
                }
            }
        }
        for i in 0..<acc.count { y[i] = Float(acc[i] / 4) }
    }

    /// Naive adjoint of 2x2 average pooling: dx[p, i, j] += dy[p, i/2, j/2] / 4.
    public static func avgPool2x2Backward(
        dy: UnsafePointer<Float>, planes: Int, height h: Int, width w: Int,
        dx: UnsafeMutablePointer<Float>
    ) {
        for p in 0..<planes {
            for i in 0..<h {
                for j in 0..<w {
                    let g = Double(dy[(p * (h / 2) + i / 2) * (w / 2) + j / 2]) / 4
                    dx[(p * h + i) * w + j] = Float(Double(dx[(p * h + i) * w + j]) + g)
                }
            }
        }
    }

    /// Naive plane means, y [P] (Double sums).
    public static func globalAvgPool(_ x: UnsafePointer<Float>, planes: Int, hw: Int, y: UnsafeMutablePointer<Float>) {
        for p in 0..<planes {
            var s = 0.0
            for j in 0..<hw { s += Double(x[p * hw + j]) }
            y[p] = Float(s / Double(hw))
        }
    }

    /// Naive adjoint of plane means: dx[p, j] += dy[p] / hw.
    public static func globalAvgPoolBackward(
        dy: UnsafePointer<Float>, planes: Int, hw: Int,
        dx: UnsafeMutablePointer<Float>
    ) {
        for p in 0..<planes {
            for j in 0..<hw {
                dx[p * hw + j] = Float(Double(dx[p * hw + j]) + Double(dy[p]) / Double(hw))
            }
        }
    }
}
