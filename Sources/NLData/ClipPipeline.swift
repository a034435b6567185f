/// What a clip goes through after sampling: decoding at a short side, cropping (one or more
/// views), flipping, and normalising into the model's float layout.
public struct ClipPipeline: Sendable, Equatable {
    public enum Crop: Sendable, Equatable {
        case random(RandomCrop)
        case center(CenterCrop)
        case three(ThreeCrop)
        case multiScale(MultiScaleCrop)
    }

    public var resize: ShortEdgeResize
    public var crop: Crop
    public var flip: RandomHorizontalFlip?
    public var rescale: Rescale?
    public var normalize: Normalize

    public init(resize: ShortEdgeResize, crop: Crop, flip: RandomHorizontalFlip? = nil, rescale: Rescale? = nil, normalize: Normalize) {
        (self.resize, self.crop, self.flip, self.rescale, self.normalize) = (resize, crop, flip, rescale, normalize)
    }

    /// Spatial views each clip gives: three for ThreeCrop, else one.
    public var views: Int {
        if case .three = crop { return 3 }
        return 1
    }

    /// Height and width of every view.
    public var outputSize: Int {
        switch crop {
        case .random(let c): c.size
        case .center(let c): c.size
        case .three(let c): c.size
        case .multiScale(let c): c.inputSize
        }
    }

    /// The views of one decoded clip: cropped, then flipped (one draw for the clip).
    public func views(of clip: VideoFrames, using generator: inout SeededGenerator) -> [VideoFrames] {
        var views: [VideoFrames]
        switch crop {
        case .random(let c): views = [c.apply(clip, using: &generator)]
        case .center(let c): views = [c.apply(clip)]
        case .three(let c): views = c.apply(clip)
        case .multiScale(let c): views = [c.apply(clip, using: &generator)]
        }
        if let flip, flip.draw(using: &generator) {
            for i in views.indices { views[i].flipHorizontally() }
        }
        return views
    }
}
