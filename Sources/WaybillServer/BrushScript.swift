import Foundation
import Hummingbird
import NIOCore

/// `GET /assets/brush.js`: the one script the pages load (`brush.js` beside the templates, read once):
/// dragging across a chart with a time axis goes to the same page with `from` and `to` set to the range
/// dragged. The Content-Security-Policy allows scripts from the server itself and nothing inline; the
/// script fetches nothing. Pages work the same without it.
enum BrushScript {
    static let text: Result<String, PageRenderer.LoadError> = {
        guard let js = ShippedResources.file("templates/brush.js") else {
            return .failure(PageRenderer.LoadError(file: "templates/brush.js", message: "not compiled into this binary"))
        }
        return .success(js)
    }()

    static func response() -> Response {
        switch text {
        case .success(let js):
            return Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8", .cacheControl: "max-age=300"],
                            body: .init(byteBuffer: ByteBuffer(string: js)))
        case .failure(let e):
            return Response(status: .internalServerError, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: "waybill cannot serve the page script: \(e)\n")))
        }
    }
}
