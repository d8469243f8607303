import HTTPTypes
import Hummingbird

/// Every `/ui` answer's security headers, and its errors as HTML pages rather than the API's JSON.
///
/// The Content-Security-Policy allows scripts, styles, images and fetches from this origin only
/// (so no inline script or style runs, whatever a page shows), no framing, and forms that post
/// only here. A page that needs a login redirects to it (303).
struct DashboardMiddleware: RouterMiddleware {
    typealias Context = SluiceRequestContext
    let views: DashboardViews

    static let contentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"

    func handle(
        _ request: Request, context: SluiceRequestContext, next: (Request, SluiceRequestContext) async throws -> Response
    ) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch is DashboardController.SignInRequired {
            response = DashboardController.redirect("/ui/login")
        } catch let error as DashboardError {
            response = views.render("error", DashboardViews.ErrorPage(status: error.status, message: error.message), status: error.status)
        } catch let error as HTTPResponseError where error.status == .notFound || error.status == .contentTooLarge {
            // The router's own 404 (no such /ui page) and a form over its size.
            response = views.render(
                "error", DashboardViews.ErrorPage(status: error.status, message: error.status == .notFound ? "No such page." : "The form is too large."),
                status: error.status)
        }
        response.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        return response
    }
}
