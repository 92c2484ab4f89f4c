/// Upper bounds on the floats a network's layer buffers hold per sample after a forward pass,
/// computed from the architecture alone: what a loader weighs against a memory limit before a
/// network from an untrusted file runs (a small checkpoint can declare a network whose activations
/// need far more memory than its parameters). Every term counts a buffer a layer may grow for
/// its output or its layout conversions; the network's shared im2col scratch is added once, at its
/// largest. `ActivationBoundTests` checks the bounds against what a forward allocates.
enum ActivationBound {
    /// Output side of `c` on a square input of side `r`.
    static func side(_ c: Conv2d, _ r: Int) -> Int { (r + 2 * c.padding - c.kernel) / c.stride + 1 }

    /// Its output, and the layout copies of input and output the im2col engine makes in NHWC.
    static func conv(_ c: Conv2d, _ r: Int) -> Int {
        let ro = side(c, r)
        return 2 * c.outChannels * ro * ro + c.inChannels * r * r
    }

    /// The im2col scratch `c` needs (shared by the network's convolutions).
    static func scratch(_ c: Conv2d, _ r: Int) -> Int {
        let ro = side(c, r)
        return c.inChannels * c.kernel * c.kernel * ro * ro
    }

    /// Both normalisations, both convolutions, the skip projection and the block's own output.
    static func block(_ b: ResBlock, _ r: Int) -> Int {
        let hw = r * r
        return (b.inChannels + 2 * b.outChannels) * hw + conv(b.conv0, r) + conv(b.conv1, r)
            + (b.skip.map { conv($0, r) } ?? 0) + b.affine.outFeatures
    }

    static func blockScratch(_ b: ResBlock, _ r: Int) -> Int {
        max(scratch(b.conv0, r), scratch(b.conv1, r), b.skip.map { scratch($0, r) } ?? 0)
    }

    /// The noise (and label) embedding MLP.
    static func embedding(_ e: EmbeddingMLP) -> Int { e.noiseChannels + 4 * e.embChannels }

    /// A linear layer's output (its input belongs to the layer before).
    static func linear(_ l: Linear) -> Int { l.outFeatures }

    /// An MLP residual block: two linear layers, the embedding projection, two activations, its output.
    static func mlpBlock(_ b: MLPBlock) -> Int {
        linear(b.fc0) + linear(b.affine) + linear(b.fc1) + 2 * b.fc0.outFeatures + b.fc1.outFeatures
            + b.fc0.inFeatures
    }

    /// The encoder half both U-Nets share (input copy, input convolution, blocks, downsampling, middle
    /// block), with its largest scratch.
    static func encoder(
        convIn: Conv2d, enc: [[ResBlock]], downs: [Conv2d], mid: ResBlock, embed: EmbeddingMLP, res: [Int]
    ) -> (floats: Int, scratch: Int) {
        var f = embedding(embed) + conv(convIn, res[0]) + convIn.inChannels * res[0] * res[0]
        var s = scratch(convIn, res[0])
        for l in 0..<enc.count {
            for b in enc[l] { f += block(b, res[l]); s = max(s, blockScratch(b, res[l])) }
            if l < downs.count { f += conv(downs[l], res[l]); s = max(s, scratch(downs[l], res[l])) }
        }
        let last = res[res.count - 1]
        return (f + block(mid, last), max(s, blockScratch(mid, last)))
    }
}
