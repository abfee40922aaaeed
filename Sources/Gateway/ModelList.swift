import Metering

/// `GET /v1/models`: the models this gateway routes, in the caller's dialect; and
/// `GET /v1/models/{id}`, one of them (the SDKs' `models.retrieve`).
enum ModelList {
    static func body(_ models: [String], dialect: Dialect) -> String {
        let items = models.map { item($0, dialect: dialect) }
        switch dialect {
        case .openai:
            return #"{"object":"list","data":[\#(items.joined(separator: ","))]}"#
        case .anthropic:
            let first = models.first.map(JSONString.literal) ?? "null"
            let last = models.last.map(JSONString.literal) ?? "null"
            return #"{"data":[\#(items.joined(separator: ","))],"has_more":false,"first_id":\#(first),"last_id":\#(last)}"#
        }
    }

    /// One model object, as the list holds it.
    static func item(_ model: String, dialect: Dialect) -> String {
        switch dialect {
        case .openai:
            return #"{"id":\#(JSONString.literal(model)),"object":"model","created":0,"owned_by":"tokenctl"}"#
        case .anthropic:
            return #"{"type":"model","id":\#(JSONString.literal(model)),"display_name":\#(JSONString.literal(model)),"created_at":"1970-01-01T00:00:00Z"}"#
        }
    }
}
