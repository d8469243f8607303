import Foundation
import SluiceStore
import Testing

@Suite struct DatabaseFileModeTests {
    func mode(_ path: String) -> Int? { (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int }

    /// The database, its -wal and -shm, and a directory made for it are the owner's only, also
    /// under a permissive umask; an existing database readable by others is made owner-only.
    @Test func theDatabaseAndItsWalAreOwnerOnly() throws {
        let directory = NSTemporaryDirectory() + "sluice-modes-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let previous = umask(0o022)
        defer { umask(previous) }
        let path = directory + "/db/sluice.sqlite"
        let database = try SluiceDatabase(path: path)
        #expect(try database.journalMode() == "wal")
        #expect(mode(directory + "/db") == 0o700)
        for file in [path, path + "-wal", path + "-shm"] { #expect(mode(file) == 0o600, "\(file): \(String(mode(file) ?? -1, radix: 8))") }

        let older = directory + "/old.sqlite"
        FileManager.default.createFile(atPath: older, contents: nil, attributes: [.posixPermissions: 0o644])
        _ = try SluiceDatabase(path: older)
        #expect(mode(older) == 0o600)
    }
}
