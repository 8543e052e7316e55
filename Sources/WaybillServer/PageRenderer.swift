import Foundation
import Hummingbird
import Mustache
import NIOCore
import WaybillModel

/// Markup the server made itself (an SVG chart, a fragment of a page) that a template inserts as it is.
/// It is the only kind of value a template may insert unescaped (`{{{nameSVG}}}` / `{{{nameHTML}}}`;
/// `PageRenderer` refuses a template that inserts any other name unescaped). Make one only from markup
/// whose every text from data went through `HTMLText.escape` (as `SVGChart` does).
struct TrustedHTML: MustacheCustomRenderable, Sendable, Equatable {
    let markup: String
    init(escapedMarkup: String) { markup = escapedMarkup }
    var renderText: String { markup }
    var isNull: Bool { markup.isEmpty }
}

/// The pages' templates (`Resources/templates/*.mustache`), parsed once at start.
///
/// - Every page is a template that extends `layout` (`{{<layout}}{{$content}}…{{/content}}{{/layout}}`):
///   the layout draws the header with the navigation and the search box (any order id or linked key,
///   to `/search?key=`, which redirects to `/orders/{key}`), the style sheet (`style`), and an optional
///   `<meta http-equiv="refresh">` when the page model has `refreshSeconds` (auto-refresh needs no script).
/// - A page model is a Swift value (struct, array, dictionary) with a `title`; templates read its fields
///   by name. `{{name}}` HTML-escapes (the library's default content type is HTML), so text from events,
///   spans and parameters is escaped without anyone thinking of it. Unescaped output (`{{{x}}}`, `{{& x}}`)
///   is allowed only for names ending in `SVG` or `HTML`, which by convention hold `TrustedHTML`.
/// - Links are built in Swift with `URLText.pathSegment` / `URLText.query` and passed as text (escaped).
final class PageRenderer: Sendable {
    let library: MustacheLibrary
    let directory: String

    /// Why the templates could not be loaded: the file and what was wrong.
    struct LoadError: Error, CustomStringConvertible {
        let file: String
        let message: String
        var description: String { "\(file): \(message)" }
    }

    init(directory: String) throws {
        self.directory = directory
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".mustache") }.sorted()
        guard names.contains("layout.mustache") else { throw LoadError(file: directory, message: "no layout.mustache in the templates folder") }
        var templates: [String: MustacheTemplate] = [:]
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            let text: String
            do { text = try String(contentsOfFile: path, encoding: .utf8) } catch { throw LoadError(file: path, message: "\(error)") }
            if let bad = Self.unescapedNames(text).first(where: { !($0.hasSuffix("SVG") || $0.hasSuffix("HTML")) }) {
                throw LoadError(file: path, message: "inserts '\(bad)' unescaped; only names ending in SVG or HTML (TrustedHTML) may be")
            }
            do { templates[String(name.dropLast(".mustache".count))] = try MustacheTemplate(string: text) } catch {
                throw LoadError(file: path, message: "\(error)")
            }
        }
        library = MustacheLibrary(templates: templates)
    }

    /// The names a template inserts without escaping: `{{{name}}}` and `{{& name}}`.
    static func unescapedNames(_ text: String) -> [String] {
        var names: [String] = []
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            rest = rest[open.upperBound...]
            if rest.hasPrefix("{") {
                guard let close = rest.range(of: "}}}") else { break }
                names.append(rest[rest.index(after: rest.startIndex)..<close.lowerBound].trimmingCharacters(in: .whitespaces))
                rest = rest[close.upperBound...]
            } else if rest.hasPrefix("&") {
                guard let close = rest.range(of: "}}") else { break }
                names.append(rest[rest.index(after: rest.startIndex)..<close.lowerBound].trimmingCharacters(in: .whitespaces))
                rest = rest[close.upperBound...]
            }
        }
        return names
    }

    func render(_ template: String, _ model: Any) -> String {
        library.render(model, withTemplate: template) ?? "template \(template) is missing"
    }

    /// A page as the response (`text/html`; the security headers middleware adds the CSP).
    func page(_ template: String, _ model: Any, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: render(template, model))))
    }

    /// The shipped templates, loaded once; a binary without its resource bundle gets an error page naming the cause.
    static let shipped: Result<PageRenderer, LoadError> = {
        guard let folder = ShippedResources.folder("templates", containing: "layout.mustache") else {
            return .failure(LoadError(file: "templates", message: "the page templates (Waybill_WaybillServer.resources/templates) are not beside the waybill binary"))
        }
        do { return .success(try PageRenderer(directory: folder)) } catch let e as LoadError { return .failure(e) } catch {
            return .failure(LoadError(file: folder, message: "\(error)"))
        }
    }()
}

/// Folders shipped as resources of this module (`.copy` in Package.swift keeps them as folders): beside the
/// binary in SwiftPM's resource bundle, else in the checkout the binary was built from.
enum ShippedResources {
    static func folder(_ name: String, containing file: String) -> String? {
        let beside = Bundle.main.bundleURL
        let candidates = [
            beside.appendingPathComponent("Waybill_WaybillServer.resources").appendingPathComponent(name).path,
            beside.appendingPathComponent("Waybill_WaybillServer.bundle/Contents/Resources").appendingPathComponent(name).path,
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources").appendingPathComponent(name).standardized.path,
        ]
        return candidates.first { FileManager.default.fileExists(atPath: ($0 as NSString).appendingPathComponent(file)) }
    }
}

extension WebPages {
    /// The shipped templates, or the reason they are missing as a plain page (500). A page showing a refused
    /// parameter answers 400 (`status`), still as the page with its form and the reason.
    static func render(_ template: String, _ model: Any, status: HTTPResponse.Status = .ok) -> Response {
        switch PageRenderer.shipped {
        case .success(let r): return r.page(template, model, status: status)
        case .failure(let e):
            return Response(status: .internalServerError, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: "waybill cannot render pages: \(e)\n")))
        }
    }
}
