import SluiceQueue

/// The leader lock lives in SluiceQueue (the archiver and the batch finalizer take one too); the
/// scaler's code and tests name it as before.
public typealias LeaderLock = SluiceQueue.LeaderLock
