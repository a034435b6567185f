/// How a dataset's videos are listed.
public enum AnnotationFormat: String, CaseIterable, Sendable {
    /// Kinetics CSV: label,youtube_id,time_start,time_end,split; videos at
    /// ROOT/SPLIT/LABEL/YOUTUBEID_START_END.EXT.
    case kineticsCSV = "kinetics_csv"
    /// mmaction2 list files: "relative/path label_index" per line.
    case list
    /// A folder per class: ROOT/CLASS/video.
    case folders
}

/// The crop of each clip in training.
public enum TrainCrop: String, CaseIterable, Sendable {
    /// A crop_size square at a random place, after the short side drawn from train_short_side:
    /// the paper's and PySlowFast's recipe.
    case random
    /// mmaction2's MultiScaleCrop (scales of the short side at five fixed places), resized to
    /// crop_size: mmaction2's I3D recipe.
    case multiscale
}

/// The crops of each clip in testing.
public enum TestCrop: String, CaseIterable, Sendable {
    case center
    /// Left, centre and right (or top, centre, bottom) squares covering the short side.
    case three
}
