import Metering

/// `GET /v1/models`: the models this gateway routes, in the caller's dialect.
enum ModelList {
    static func body(_ models: [String], dialect: Dialect) -> String {
        switch dialect {
        case .openai:
            let items = models.map {
                #"{"id":"\#(JSONText.escape($0))","object":"model","created":0,"owned_by":"tokenctl"}"#
            }
            return #"{"object":"list","data":[\#(items.joined(separator: ","))]}"#
        case .anthropic:
            let items = models.map {
                #"{"type":"model","id":"\#(JSONText.escape($0))","display_name":"\#(JSONText.escape($0))","created_at":"1970-01-01T00:00:00Z"}"#
            }
            let first = models.first.map { "\"\(JSONText.escape($0))\"" } ?? "null"
            let last = models.last.map { "\"\(JSONText.escape($0))\"" } ?? "null"
            return #"{"data":[\#(items.joined(separator: ","))],"has_more":false,"first_id":\#(first),"last_id":\#(last)}"#
        }
    }
}
