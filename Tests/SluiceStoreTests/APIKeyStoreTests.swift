import Foundation
import SluiceCore
@testable import SluiceStore
import Testing

/// Every test runs on SQLite and on a real PostgreSQL.
@Suite struct APIKeyStoreTests {
    @Test(arguments: Engine.allCases) func createdKeyAuthenticatesWithItsTenantAndScopes(engine: Engine) async throws {
        try await withStore(engine) { store, _ in
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

    @Test(arguments: Engine.allCases) func onlyTheHashIsStoredNeverTheSecret(engine: Engine) async throws {
        try await withStore(engine) { store, test in
            let (secret, _) = try store.create(tenant: "acme", scopes: [.admin])
            let secretPart = String(secret.split(separator: "_", maxSplits: 2)[2])
            if let path = test.sqlitePath {
                // Not in the database file, nor its WAL, in any form.
                for file in [path, path + "-wal"] {
                    guard let bytes = FileManager.default.contents(atPath: file) else { continue }
                    #expect(bytes.range(of: Data(secretPart.utf8)) == nil, "the secret is in \(file)")
                }
            } else {
                // Every column of every row, as text (the hash as hex), holds no part of it.
                let rows = try store.database.readSync { db in
                    try db.query("SELECT CAST(api_keys AS TEXT) AS whole FROM api_keys").map { try $0["whole"] as String }
                }
                #expect(rows.count == 1)
                #expect(!rows[0].contains(secretPart) && !rows[0].contains(String(secretPart.prefix(12))))
            }
        }
    }

    @Test(arguments: Engine.allCases) func tamperedMalformedAndUnknownKeysAreRefused(engine: Engine) async throws {
        try await withStore(engine) { store, _ in
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

    @Test(arguments: Engine.allCases) func revokedKeyIsRefused(engine: Engine) async throws {
        try await withStore(engine) { store, _ in
            let (secret, key) = try store.create(tenant: "acme", scopes: [.submit])
            #expect(try store.revoke(prefix: key.prefix))
            #expect(try store.authenticate(secret) == nil)
            #expect(try store.list().first?.isRevoked == true)
            #expect(try store.revoke(prefix: "sluice_nosuchky") == false)
        }
    }

    @Test(arguments: Engine.allCases) func listShowsPrefixesPerTenantNewestFirst(engine: Engine) async throws {
        try await withStore(engine) { store, _ in
            let first = try store.create(tenant: "acme", scopes: [.read]).key
            let other = try store.create(tenant: "globex", scopes: [.read]).key
            let second = try store.create(tenant: "acme", scopes: [.submit]).key
            #expect(try store.list(tenant: "acme").map(\.prefix) == [second.prefix, first.prefix])
            #expect(try store.list().map(\.prefix) == [second.prefix, other.prefix, first.prefix])
            #expect(Set([first, other, second].map(\.prefix)).count == 3)
        }
    }

    @Test(arguments: Engine.allCases) func useIsRecorded(engine: Engine) async throws {
        try await withStore(engine) { store, _ in
            let (secret, key) = try store.create(tenant: "acme", scopes: [.read])
            try store.recordUse(id: key.id, now: UnixMillis(1_800_000_000_000))
            #expect(try store.authenticate(secret)?.lastUsedAt == UnixMillis(1_800_000_000_000))
        }
    }

    @Test(arguments: Engine.allCases) func badTenantOrScopesAreRefusedWithTheField(engine: Engine) async throws {
        try await withStore(engine) { store, _ in
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

    @Test(arguments: Engine.allCases) func databaseReportsItsModeAndReopens(engine: Engine) async throws {
        try await withStore(engine) { store, test in
            #expect(try store.database.journalMode() == (engine == .sqlite ? "wal" : "postgresql"))
            let (secret, key) = try store.create(tenant: "acme", scopes: [.read])
            // A second open of the same database (another process would do the same) sees the key,
            // through the async path too, and its revocation.
            let again = APIKeyStore(database: try test.open())
            defer { again.database.close() }
            #expect(try again.authenticate(secret)?.tenant == "acme")
            #expect(try await again.authenticateAsync(secret)?.id == key.id)
            #expect(try store.revoke(prefix: key.prefix))
            #expect(try await again.authenticateAsync(secret) == nil)
        }
    }

    @Test(arguments: Engine.allCases) func limitsBudgetAndCacheSettingsRoundTrip(engine: Engine) async throws {
        try await withStore(engine) { store, _ in
            let limits = KeyLimits(submitRate: 2.5, submitBurst: 10, maxQueued: 100, maxPriority: 5, lanes: ["openai/gpt-4o", "anthropic"])
            let (_, key) = try store.create(tenant: "acme", scopes: [.submit], limits: limits)
            #expect(try store.find(prefix: key.prefix)?.limits == limits)
            let tighter = KeyLimits(submitRate: 1, submitBurst: 1)
            #expect(try store.setLimits(prefix: key.prefix, tighter)?.limits == tighter)
            let budget = BudgetPolicy(micros: 5_000_000, per: .day)
            #expect(try store.setBudget(prefix: key.prefix, budget)?.budget == budget)
            #expect(try store.setCache(prefix: key.prefix, .off)?.cache == .off)
            #expect(try store.find(id: key.id)?.budget == budget)
            #expect(try store.setLimits(prefix: "sluice_nosuchky", tighter) == nil)
            try await store.recordUseAsync(id: key.id, now: UnixMillis(1_800_000_000_123))
            #expect(try store.find(id: key.id)?.lastUsedAt == UnixMillis(1_800_000_000_123))
        }
    }

    @Test(arguments: Engine.allCases) func webhookSecretsAreEnsuredOnceAndRotate(engine: Engine) async throws {
        try await withStore(engine) { store, _ in
            let key = try store.create(tenant: "acme", scopes: [.submit]).key
            #expect(try await store.webhookSecret(keyID: key.id) == nil)
            let first = try await store.ensureWebhookSecret(keyID: key.id, fresh: "whsec_one")
            #expect(first.current == "whsec_one" && first.previous == nil)
            // A second ensure keeps the first secret.
            #expect(try await store.ensureWebhookSecret(keyID: key.id, fresh: "whsec_two").current == "whsec_one")
            let now = UnixMillis(1_800_000_000_000)
            let rotated = try await store.rotateWebhookSecret(keyID: key.id, fresh: "whsec_three", keepPrevious: .seconds(60), now: now)
            #expect(rotated.current == "whsec_three" && rotated.previous == "whsec_one")
            #expect(try await store.webhookSecret(keyID: key.id) == rotated)
            #expect(rotated.previousUntil == UnixMillis(now.value + 60_000))
            let other = try store.create(tenant: "globex", scopes: [.submit]).key
            _ = try await store.rotateWebhookSecret(keyID: other.id, fresh: "whsec_g", keepPrevious: .seconds(60), now: now)
            #expect(try await store.allWebhookSecrets().map(\.current) == ["whsec_three", "whsec_g"])
        }
    }
}

@Suite struct FirstAdminKeyTests {
    @Test(arguments: Engine.allCases) func firstStartCreatesOneAdminKeyEvenWhenTwoRace(engine: Engine) async throws {
        try await withDatabase(engine) { test in
            try test.open().close()  // migrated once, as the first process would
            // Two processes starting at once: two handles on one database, each asking for the first key.
            let stores = [APIKeyStore(database: try test.open()), APIKeyStore(database: try test.open())]
            defer { for store in stores { store.database.close() } }
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
}
