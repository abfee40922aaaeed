import NIOHTTP1

/// The CORS headers of answers to pages of the origins `gateway.yaml`'s `cors` allows
/// (see `CORSSettings`). Keys go in headers, not cookies: no credentials are allowed.
enum CrossOrigin {
    /// Headers of every answer to an allowed origin. The SDKs read the request id, the
    /// rate-limit and retry headers: every header is exposed (`*`, valid without credentials).
    static func allow(_ origin: String, in headers: inout HTTPHeaders) {
        headers.add(name: "access-control-allow-origin", value: origin)
        headers.add(name: "access-control-expose-headers", value: "*")
        if origin != "*" { headers.add(name: "vary", value: "origin") }
    }

    /// Whether pages may call `path` across origins: the model routes and `/healthz`, not the
    /// admin API, `/metrics` or `/dashboard`. An admin key belongs in the dashboard on the
    /// gateway's own origin; a page elsewhere holding one (a script injected into an internal
    /// tool) could read everyone's spend and mint keys.
    static func covers(path: String) -> Bool {
        !(path.hasPrefix("/admin/") || path == "/metrics" || path == "/dashboard")
    }

    /// A preflight's answer: the methods the gateway serves, and the headers the page asked for
    /// (`authorization` must be named: a wildcard does not cover it). Browsers keep it 10 minutes.
    static func preflightHeaders(requested: HTTPHeaders) -> [(String, String)] {
        var headers = [("access-control-allow-methods", "GET, HEAD, POST"), ("access-control-max-age", "600")]
        if let asked = requested.first(name: "access-control-request-headers") {
            headers.append(("access-control-allow-headers", asked))
        }
        return headers
    }
}
