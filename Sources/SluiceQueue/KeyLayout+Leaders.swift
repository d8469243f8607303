extension KeyLayout {
    /// The leader lock of a cluster-wide role (`archiver`, `batches`): string, the holder; one web
    /// replica at a time runs that role (`LeaderService`).
    public static func leaderLock(role: String) -> String { root + "leader:" + role }
}
