import Metering

/// `GET /v1/models`: the models this gateway routes, in the caller's dialect.
enum ModelList {
    static func body(_ models: [String], dialect: Dialect) -> String {
        switch dialect {
        case .openai:
            let items = models.map {
                #"{"id":\#(JSONString.literal($0)),"object":"model","created":0,"owned_by":"tokenctl"}"#
            }
            return #"{"object":"list","data":[\#(items.joined(separator: ","))]}"#
        case .anthropic:
            let items = models.map {
                #"{"type":"model","id":\#(JSONString.literal($0)),"display_name":\#(JSONString.literal($0)),"created_at":"1970-01-01T00:00:00Z"}"#
            }
            let first = models.first.map(JSONString.literal) ?? "null"
            let last = models.last.map(JSONString.literal) ?? "null"
            return #"{"data":[\#(items.joined(separator: ","))],"has_more":false,"first_id":\#(first),"last_id":\#(last)}"#
        }
    }
}
