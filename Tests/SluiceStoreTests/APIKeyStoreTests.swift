import Foundation
import SluiceCore
import SluiceStore
import Testing

/// A store on a fresh database file, removed afterwards.
func withStore<T>(_ body: (APIKeyStore, String) throws -> T) throws -> T {
    let directory = NSTemporaryDirectory() + "sluice-store-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/sluice.sqlite"
    return try body(APIKeyStore(database: try SluiceDatabase(path: path)), path)
}

@Suite struct APIKeyStoreTests {
    @Test func createdKeyAuthenticatesWithItsTenantAndScopes() throws {
        try withStore { store, _ in
            let (secret, key) = try store.create(tenant: "acme", scopes: [.submit, .read])
            #expect(secret.hasPrefix(key.prefix + "_"))
            #expect(secret.utf8.count == "sluice_".count + 8 + 1 + 43)
            let found = try #require(try store.authenticate(secret))
            #expect(found.id == key.id)
            #expect(found.tenant == "acme")
            #expect(found.scopes == [.submit, .read])
            #expect(found.lastUsedAt == nil)
        }
    }

    @Test func onlyTheHashIsStoredNeverTheSecret() throws {
        try withStore { store, path in
            let (secret, _) = try store.create(tenant: "acme", scopes: [.admin])
            let secretPart = String(secret.split(separator: "_", maxSplits: 2)[2])
            // Not in the database file, nor its WAL, in any form.
            for file in [path, path + "-wal"] {
                guard let bytes = FileManager.default.contents(atPath: file) else { continue }
                #expect(bytes.range(of: Data(secretPart.utf8)) == nil, "the secret is in \(file)")
            }
        }
    }

    @Test func tamperedMalformedAndUnknownKeysAreRefused() throws {
        try withStore { store, _ in
            let (secret, _) = try store.create(tenant: "acme", scopes: [.read])
            var tampered = Array(secret.utf8)
            tampered[tampered.count - 1] = tampered.last == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            #expect(try store.authenticate(String(decoding: tampered, as: UTF8.self)) == nil)
            #expect(try store.authenticate(String(secret.dropLast())) == nil)
            #expect(try store.authenticate("") == nil)
            #expect(try store.authenticate("Bearer " + secret) == nil)
            #expect(try store.authenticate("sluice_aaaaaaaa_" + String(repeating: "x", count: 43)) == nil)
            #expect(try store.authenticate(secret) != nil)
        }
    }

    @Test func revokedKeyIsRefused() throws {
        try withStore { store, _ in
            let (secret, key) = try store.create(tenant: "acme", scopes: [.submit])
            #expect(try store.revoke(prefix: key.prefix))
            #expect(try store.authenticate(secret) == nil)
            #expect(try store.list().first?.isRevoked == true)
            #expect(try store.revoke(prefix: "sluice_nosuchky") == false)
        }
    }

    @Test func listShowsPrefixesPerTenantNewestFirst() throws {
        try withStore { store, _ in
            let first = try store.create(tenant: "acme", scopes: [.read]).key
            let other = try store.create(tenant: "globex", scopes: [.read]).key
            let second = try store.create(tenant: "acme", scopes: [.submit]).key
            #expect(try store.list(tenant: "acme").map(\.prefix) == [second.prefix, first.prefix])
            #expect(try store.list().map(\.prefix) == [second.prefix, other.prefix, first.prefix])
            #expect(Set([first, other, second].map(\.prefix)).count == 3)
        }
    }

    @Test func useIsRecorded() throws {
        try withStore { store, _ in
            let (secret, key) = try store.create(tenant: "acme", scopes: [.read])
            try store.recordUse(id: key.id, now: UnixMillis(1_800_000_000_000))
            #expect(try store.authenticate(secret)?.lastUsedAt == UnixMillis(1_800_000_000_000))
        }
    }

    @Test func badTenantOrScopesAreRefusedWithTheField() throws {
        try withStore { store, _ in
            #expect(throws: StoreError.invalid(field: "tenant", reason: "must be 1-200 characters without ':'")) {
                try store.create(tenant: "a:b", scopes: [.read])
            }
            #expect(throws: StoreError.invalid(field: "scopes", reason: "at least one scope is needed")) {
                try store.create(tenant: "acme", scopes: [])
            }
        }
        #expect(throws: ScopeError.unknown("write", allowed: ["submit", "read", "admin"])) { try Scope.parseList("read,write") }
        #expect(try Scope.parseList(" admin , submit") == [.admin, .submit])
        #expect(Scope.format([.admin, .read, .submit]) == "submit,read,admin")
    }

    @Test func databaseIsInWALModeAndReopens() throws {
        try withStore { store, path in
            #expect(try store.database.journalMode() == "wal")
            let (secret, _) = try store.create(tenant: "acme", scopes: [.read])
            // A second open of the same file (another process would do the same) sees the key.
            let again = APIKeyStore(database: try SluiceDatabase(path: path))
            #expect(try again.authenticate(secret)?.tenant == "acme")
        }
    }
}

@Suite struct FirstAdminKeyTests {
    @Test func firstStartCreatesOneAdminKeyEvenWhenTwoRace() async throws {
        let directory = NSTemporaryDirectory() + "sluice-first-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/sluice.sqlite"
        _ = try SluiceDatabase(path: path)  // migrated once, as the first process would
        // Two processes starting at once: two handles on one file, each asking for the first key.
        let stores = [APIKeyStore(database: try SluiceDatabase(path: path)), APIKeyStore(database: try SluiceDatabase(path: path))]
        let created = try await withThrowingTaskGroup(of: Bool.self) { group in
            for store in stores { group.addTask { try store.createFirstAdminKeyIfNone() != nil } }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(created.filter { $0 }.count == 1)
        let keys = try stores[0].list()
        #expect(keys.count == 1 && keys[0].scopes == [.admin])
        #expect(try stores[1].createFirstAdminKeyIfNone() == nil)
    }
}
