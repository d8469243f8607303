import Foundation
import SluiceCore
import SluiceTestSupport
import Testing

@testable import SluiceStore

/// `database:` as a path or a PostgreSQL URL; the password only from the environment, and never
/// in a message.
@Suite struct DatabaseSettingTests {
    let password = "s3cret-Pa55word"

    @Test func aPathIsSQLiteAndAURLIsPostgres() throws {
        #expect(try DatabaseSetting("var/sluice.sqlite", environment: [:]) == .sqlite(path: "var/sluice.sqlite"))
        let tcp = try PostgresLocation.parse("postgres://sluice@db.internal:6543/prod", allowPassword: false)
        #expect(tcp.endpoint == .tcp(host: "db.internal", port: 6543) && tcp.user == "sluice" && tcp.database == "prod")
        #expect(tcp.tls == .prefer)
        let socket = try PostgresLocation.parse("postgresql://app@/sluice?host=/run/postgresql", allowPassword: false)
        #expect(socket.endpoint == .unixSocket(path: "/run/postgresql/.s.PGSQL.5432") && socket.tls == .disable)
        #expect(try PostgresLocation.parse("postgres://a@h/d?sslmode=require", allowPassword: false).tls == .require)
        #expect(tcp.description == "postgres://sluice@db.internal:6543/prod")
    }

    /// `sluice up` and `sluice keys` name the database they cannot open: a password given in
    /// `SLUICE_DB` (refused) must not be printed with it, whatever the scheme's case.
    @Test func aDatabaseIsDescribedWithoutItsPasswordInAnyCase() {
        for url in ["postgres://sluice:\(password)@db:5432/sluice", "POSTGRES://sluice:\(password)@db/sluice",
                    "postgresql://sluice@/sluice?host=/run&password=\(password)"] {
            #expect(PostgresLocation.isURL(url))
            let shown = SluiceDatabase.describe(url)
            #expect(!shown.contains(password), "\(shown)")
            #expect(shown.contains("sluice"), "\(shown)")
            #expect(throws: DatabaseSettingError.self) { try DatabaseSetting(url, environment: [:]) }
        }
        #expect(!SluiceDatabase.describe("postgres://u:\(password)@[bad").contains(password))
        #expect(SluiceDatabase.describe("var/sluice.sqlite") == "var/sluice.sqlite")
    }

    @Test func aPasswordInTheConfigurationIsRefusedWithoutBeingShown() {
        let url = "postgres://sluice:\(password)@db:5432/sluice"
        #expect(PostgresLocation.hasPassword(url))
        #expect(throws: DatabaseSettingError.passwordInConfiguration) { try DatabaseSetting(url, environment: [:]) }
        #expect(!DatabaseSettingError.passwordInConfiguration.description.contains(password))
    }

    /// The configuration file itself refuses it, at load, with the key and without the password.
    @Test func theConfigurationFileRefusesAURLWithAPassword() throws {
        do {
            _ = try SluiceConfiguration.load(yaml: "database: \"postgres://sluice:\(password)@db:5432/sluice\"\n")
            Issue.record("a password in the file was accepted")
        } catch {
            #expect(error.key == "database" && error.problem.contains("SLUICE_DATABASE_URL") && !"\(error)".contains(password))
        }
        let loaded = try SluiceConfiguration.load(yaml: "database: postgres://sluice@db:5432/sluice\n")
        #expect(loaded.database == "postgres://sluice@db:5432/sluice")
    }

    @Test func thePasswordComesFromTheEnvironmentOrAFile() throws {
        let fromURL = try DatabaseSetting("var/ignored.sqlite", environment: ["SLUICE_DATABASE_URL": "postgres://sluice:\(password)@db/sluice"])
        guard case .postgres(let location) = fromURL else { Issue.record("not postgres"); return }
        #expect(location.password == password)
        #expect(!location.description.contains(password) && !"\(location)".contains(password))
        #expect(!String(reflecting: location).contains(password) && !String(reflecting: fromURL).contains(password))

        let file = NSTemporaryDirectory() + "sluice-pw-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: file) }
        try (password + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let fromFile = try DatabaseSetting("postgres://sluice@db/sluice", environment: ["SLUICE_DATABASE_PASSWORD_FILE": file])
        guard case .postgres(let other) = fromFile else { Issue.record("not postgres"); return }
        #expect(other.password == password)
        #expect(throws: DatabaseSettingError.self) {
            try DatabaseSetting("postgres://sluice@db/sluice", environment: ["SLUICE_DATABASE_PASSWORD_FILE": file + ".missing"])
        }
    }

    /// `?` placeholders become PostgreSQL's `$n`, but not inside quoted strings or identifiers.
    @Test func placeholdersAreNumberedOutsideQuotes() {
        #expect(SQLText.numberedPlaceholders(#"SELECT ?, '?', "a?b", x = ? AND y IN (?, ?)"#)
            == #"SELECT $1, '?', "a?b", x = $2 AND y IN ($3, $4)"#)
    }

    @Test func badURLsSayWhatIsWrong() {
        let cases: [(String, String)] = [
            ("postgres://db/sluice", "names no user"),
            ("postgres://sluice@db/", "names no database"),
            ("postgres://sluice@db:99999/sluice", "port"),
            ("postgres://sluice@db/sluice?sslmode=maybe", "sslmode 'maybe'"),
            ("postgres://sluice@db/sluice?application=x", "unknown URL parameter 'application'"),
            ("postgres://sluice@/sluice", "names no host"),
        ]
        for (url, expected) in cases {
            do {
                _ = try PostgresLocation.parse(url, allowPassword: false)
                Issue.record("\(url) was accepted")
            } catch {
                #expect(error.description.contains(expected), "\(url): \(error)")
            }
        }
    }

    /// A connection that fails (no server; a database that does not exist) says where and why,
    /// and never the password it was given.
    @Test func connectionErrorsNameTheServerNotThePassword() async throws {
        let missing = NSTemporaryDirectory() + "sluice-nopg-" + UUID().uuidString
        var location = try PostgresLocation.parse("postgres://sluice@/sluice?host=\(missing)", allowPassword: false)
        location.password = password
        do {
            _ = try SluiceDatabase(postgres: location)
            Issue.record("connected to nothing")
        } catch {
            let message = "\(error)"
            #expect(message.contains("could not connect") && message.contains(missing), "\(message)")
            #expect(!message.contains(password) && !String(reflecting: error).contains(password))
        }
        try await withPostgres { server in
            var wrong = try PostgresLocation.parse(server.url.replacingOccurrences(of: "/postgres?", with: "/nosuchdb?"), allowPassword: false)
            wrong.password = password
            do {
                _ = try SluiceDatabase(postgres: wrong)
                Issue.record("connected to a database that does not exist")
            } catch {
                let message = "\(error)"
                #expect(message.contains("nosuchdb"), "\(message)")
                #expect(!message.contains(password) && !String(reflecting: error).contains(password))
            }
        }
    }
}
