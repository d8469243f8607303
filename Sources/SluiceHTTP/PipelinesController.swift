import Foundation
import HTTPTypes
import Hummingbird
import SluiceCore
import SluiceQueue

/// `/v1/pipelines`: the pipelines a tenant may run, the configuration's and its own.
///
/// - `POST /v1/pipelines` (scope submit) `{"name", "description"?, "steps": […]}` (`Pipeline`):
///   201 with the pipeline. The definition is parsed strictly (a 400 names the field at fault,
///   `steps[2].model`), each step's target must resolve, and the key must be allowed every lane
///   and priority its steps name, as if it submitted them. 409 if the tenant has a pipeline of
///   that name or the configuration defines one; 422 past `PipelineCatalog.maxPerTenant`.
/// - `GET /v1/pipelines[?limit=&cursor=]` (scope read): the configuration's pipelines (on the
///   first page), then the tenant's stored ones by name.
/// - `GET /v1/pipelines/{name}` (scope read).
/// - `PUT /v1/pipelines/{name}` (scope submit): replaces the tenant's pipeline (the body's
///   `name`, if given, must be the path's). Runs already started keep the definition they
///   started with. 404 if the tenant has none of that name; 409 for a configuration pipeline.
/// - `DELETE /v1/pipelines/{name}` (scope submit).
///
/// Tenancy: a stored pipeline belongs to the tenant of the key that created it, and only that
/// tenant's keys see and run it. An admin key may add `?tenant=` to any of these routes to act
/// on another tenant's pipelines.
struct PipelinesController: Sendable {
    let catalog: PipelineCatalog
    let admission: KeyAdmission

    func addRoutes(to group: RouterGroup<SluiceRequestContext>) {
        group.post("pipelines", use: create)
        group.get("pipelines", use: list)
        group.get("pipelines/:name", use: get)
        group.put("pipelines/:name", use: replace)
        group.delete("pipelines/:name", use: delete)
    }

    // MARK: - Routes

    @Sendable func create(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.submit)
        let tenant = try Self.tenant(request, key: key, allowed: ["tenant"])
        let pipeline = try await definition(request, context, key: key, name: nil)
        if catalog.configured[pipeline.name] != nil {
            throw APIError(.conflict, type: "conflict", message: "the configuration defines a pipeline named '\(pipeline.name)'", param: "name")
        }
        switch try await catalog.put(pipeline, tenant: tenant, replace: false) {
        case .exists:
            throw APIError(.conflict, type: "conflict", message: "a pipeline named '\(pipeline.name)' exists; PUT /v1/pipelines/\(pipeline.name) replaces it", param: "name")
        case .full:
            throw APIError(
                .unprocessableContent, type: "limit_reached",
                message: "this tenant has \(catalog.maxPerTenant) pipelines, the most it may store; delete one first")
        case .created, .replaced, .missing:
            context.logger.info("pipeline created", metadata: ["pipeline": "\(pipeline.name)", "tenant": "\(tenant)", "key": "\(key.id)"])
            return Self.json(Self.document(pipeline, tenant: tenant), status: .created)
        }
    }

    @Sendable func list(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.read)
        let tenant = try Self.tenant(request, key: key, allowed: ["tenant", "limit", "cursor"])
        let query = request.uri.queryParameters
        let limit = try Paging.limit(query["limit"])
        // Pipelines page by name: any name is a cursor.
        let cursor = try Paging.cursor(query["cursor"], isCursor: { _ in true })
        var data: [JSONValue] = []
        if cursor == nil {
            data = catalog.configured.keys.sorted().compactMap { catalog.configured[$0].map { Self.document($0, tenant: nil) } }
        }
        let names = try await catalog.storedNames(tenant: tenant)
        let after = cursor.map { cursor in names.filter { $0 > cursor } } ?? names
        let page = Array(after.prefix(limit))
        data += try await catalog.stored(named: page, tenant: tenant).map { Self.document($0, tenant: tenant) }
        let more = after.count > page.count
        let body: JSONValue = [
            "object": "list", "data": .array(data), "has_more": .bool(more),
            "next_cursor": more ? .string(page.last ?? "") : .null,
        ]
        return Self.json(body)
    }

    @Sendable func get(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.read)
        let tenant = try Self.tenant(request, key: key, allowed: ["tenant"])
        let name = try Self.name(context)
        if let configured = catalog.configured[name] { return Self.json(Self.document(configured, tenant: nil)) }
        guard let pipeline = try await catalog.stored(named: name, tenant: tenant) else { throw Self.notFound }
        return Self.json(Self.document(pipeline, tenant: tenant))
    }

    @Sendable func replace(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.submit)
        let tenant = try Self.tenant(request, key: key, allowed: ["tenant"])
        let name = try Self.name(context)
        if catalog.configured[name] != nil { throw Self.configured(name) }
        let pipeline = try await definition(request, context, key: key, name: name)
        switch try await catalog.put(pipeline, tenant: tenant, replace: true) {
        case .missing: throw Self.notFound
        default:
            context.logger.info("pipeline replaced", metadata: ["pipeline": "\(name)", "tenant": "\(tenant)", "key": "\(key.id)"])
            return Self.json(Self.document(pipeline, tenant: tenant))
        }
    }

    @Sendable func delete(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.submit)
        let tenant = try Self.tenant(request, key: key, allowed: ["tenant"])
        let name = try Self.name(context)
        if catalog.configured[name] != nil { throw Self.configured(name) }
        guard try await catalog.delete(named: name, tenant: tenant) else { throw Self.notFound }
        context.logger.info("pipeline deleted", metadata: ["pipeline": "\(name)", "tenant": "\(tenant)", "key": "\(key.id)"])
        return Self.json(["object": "pipeline.deleted", "name": .string(name), "deleted": true])
    }

    // MARK: - Parts

    /// The body's definition, checked: strict parsing, targets that resolve, and lanes and
    /// priorities the key may use. `name`: the path's, which the body's must match if given.
    private func definition(_ request: Request, _ context: SluiceRequestContext, key: APIKey, name: String?) async throws -> Pipeline {
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw APIError(.unsupportedMediaType, type: "unsupported_media_type", message: "send application/json")
        }
        let body = Array(buffer: try await request.body.collect(upTo: context.maxUploadSize))
        guard body.count <= Pipeline.maxDefinitionBytes else {
            throw APIError(.contentTooLarge, type: "request_too_large", message: "the definition is larger than \(Pipeline.maxDefinitionBytes) bytes")
        }
        let pipeline: Pipeline
        do throws(PipelineError) {
            let value: JSONValue
            do { value = try JSONValue(parsing: body) } catch {
                throw PipelineError(param: "", message: "the body is not valid JSON (\(error))")
            }
            pipeline = try Pipeline(definition: value, name: name)
            try pipeline.checkTargets(admission.directory)
        } catch {
            throw APIError.invalid(error.param.isEmpty ? error.message : "\(error.param): \(error.message)", param: error.param.isEmpty ? nil : error.param)
        }
        try await checkLanes(pipeline, key: key)
        return pipeline
    }

    /// The key must be allowed each step's lane (every target of a route) and priority, as for
    /// a job it submitted; the run checks again when it is created, with the key that runs it.
    private func checkLanes(_ pipeline: Pipeline, key: APIKey) async throws {
        // checkTargets passed: every target resolves.
        try await admission.checkSteps(
            pipeline, key: key, unresolved: { APIError.invalid("steps[\($0)]: no lane", param: "steps[\($0)]") },
            name: { index, error in
                let field: String =
                    switch pipeline.steps[index].target {
                    case .model: "model"
                    case .lane: "lane"
                    case .provider: "provider"
                    }
                error.param = error.param == "priority" ? "steps[\(index)].priority" : "steps[\(index)].\(field)"
                error.message = "steps[\(index)]: " + error.message
            })
    }

    /// The tenant the request acts for: the key's, or (an admin key only) `?tenant=`. Refuses
    /// query parameters other than `allowed`.
    static func tenant(_ request: Request, key: APIKey, allowed: Set<String>) throws -> String {
        let query = request.uri.queryParameters
        if let unknown = query.first(where: { !allowed.contains(String($0.key)) }) {
            throw APIError.invalid("unknown query parameter '\(ModelDirectory.printable(String(unknown.key)))'", param: String(unknown.key))
        }
        guard let asked = query["tenant"].map(String.init), asked != key.tenant else { return key.tenant }
        guard key.scopes.contains(.admin) else {
            throw APIError(.forbidden, type: "permission", message: "only an admin key may act on another tenant's pipelines", param: "tenant")
        }
        guard !asked.isEmpty, asked.utf8.count <= 200 else { throw APIError.invalid("'tenant' must be 1-200 characters", param: "tenant") }
        return asked
    }

    static func name(_ context: SluiceRequestContext) throws -> String {
        guard let name = context.parameters.get("name"), Pipeline.nameProblem(name) == nil else { throw notFound }
        return name
    }

    /// A pipeline as the API shows it: `object`, where it comes from (`source`: config or
    /// stored; a stored one's `tenant`), then its definition.
    static func document(_ pipeline: Pipeline, tenant: String?) -> JSONValue {
        var object: JSONObject = ["object": "pipeline", "source": tenant == nil ? "config" : "stored"]
        if let tenant { object["tenant"] = .string(tenant) }
        if case .object(let definition) = pipeline.jsonValue {
            for member in definition.members { object[member.key] = member.value }
        }
        return .object(object)
    }

    static let notFound = APIError(.notFound, type: "not_found", message: "no such pipeline")

    static func configured(_ name: String) -> APIError {
        APIError(.conflict, type: "conflict", message: "pipeline '\(name)' is defined in the configuration; change it there", param: "name")
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: value.jsonBytes)))
    }
}
