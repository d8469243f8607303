import Foundation

/// What `database:` (with its environment) names.
enum DatabaseSetting: Equatable {
    case sqlite(path: String)
    case postgres(PostgresLocation)

    /// `SLUICE_DATABASE_URL`, when set, is the whole setting (a password may be in it); otherwise
    /// a `postgres://` setting has no password, and `SLUICE_DATABASE_PASSWORD_FILE` may name a
    /// file holding one. Anything else is a SQLite file's path.
    init(_ setting: String, environment: [String: String]) throws(DatabaseSettingError) {
        if let url = environment["SLUICE_DATABASE_URL"], !url.isEmpty {
            guard PostgresLocation.isURL(url) else {
                throw .invalid("SLUICE_DATABASE_URL is not a postgres:// URL")
            }
            self = .postgres(try PostgresLocation.parse(url, allowPassword: true))
            return
        }
        guard PostgresLocation.isURL(setting) else {
            self = .sqlite(path: setting)
            return
        }
        var location = try PostgresLocation.parse(setting, allowPassword: false)
        if let file = environment["SLUICE_DATABASE_PASSWORD_FILE"], !file.isEmpty {
            guard let data = FileManager.default.contents(atPath: file), data.count <= 4096,
                let text = String(data: data, encoding: .utf8)
            else {
                throw .passwordFile("cannot read \(file) (or it is over 4 KiB)")
            }
            let password = text.trimmingCharacters(in: .newlines)
            guard !password.isEmpty else { throw .passwordFile("\(file) is empty") }
            location.password = password
        }
        self = .postgres(location)
    }
}
