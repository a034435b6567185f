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

/// The crops of each clip in testing.
public enum TestCrop: String, CaseIterable, Sendable {
    case center
    /// Left, centre and right (or top, centre, bottom) squares covering the short side.
    case three
}
